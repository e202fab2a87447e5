"""What a failure says about the callee: its status code, and any server pushback.

Both the breaker and the retry layer read failures through these two functions, so a raw
``grpc.aio.AioRpcError``, a meshcore ``MeshError`` and a plain connection error are judged alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import grpc

from meshcore.errors import MeshError

__all__ = ["DO_NOT_RETRY", "is_connection_failure", "pushback_seconds", "status_code_of"]

DO_NOT_RETRY = -1.0
"""``pushback_seconds`` result when the server asked the client not to retry at all."""

_PUSHBACK_MS_KEY = "grpc-retry-pushback-ms"  # gRFC A6: the server's retry pushback, in ms
_RETRY_AFTER_KEY = "retry-after"  # meshcore's error interceptor: seconds, next to RetryInfo


def status_code_of(error: BaseException) -> grpc.StatusCode | None:
    """The gRPC status an error carries, or None when it is not a status at all."""
    if isinstance(error, MeshError):
        return error.code
    if isinstance(error, grpc.RpcError):
        code = getattr(error, "code", None)
        if callable(code):
            value = code()
            if isinstance(value, grpc.StatusCode):
                return value
    return None


def is_connection_failure(error: BaseException) -> bool:
    """A failure below gRPC: refused or reset connection, or an expired local timer."""
    return isinstance(error, ConnectionError | TimeoutError)


def pushback_seconds(error: BaseException) -> float | None:
    """How long the server asked us to wait before retrying; ``DO_NOT_RETRY``; or None.

    Reads ``retry_after`` on meshcore errors, and the ``grpc-retry-pushback-ms`` (gRFC A6) or
    ``retry-after`` trailers on gRPC errors. A malformed or negative A6 pushback means "do not
    retry", as the gRFC specifies.
    """
    if isinstance(error, MeshError):
        retry_after = getattr(error, "retry_after", None)
        return float(retry_after) if isinstance(retry_after, int | float) else None
    trailers = _trailers(error)
    if trailers is None:
        return None
    for key, value in trailers:
        if key == _PUSHBACK_MS_KEY:
            return _parse_non_negative(value, scale=0.001)
        if key == _RETRY_AFTER_KEY:
            seconds = _parse_non_negative(value, scale=1.0)
            return None if seconds == DO_NOT_RETRY else seconds
    return None


def _trailers(error: BaseException) -> Iterable[tuple[str, Any]] | None:
    trailing = getattr(error, "trailing_metadata", None)
    if not callable(trailing):
        return None
    try:
        metadata = trailing()
    except Exception:  # a half-built error object must not break error handling
        return None
    return metadata if metadata else None


def _parse_non_negative(value: Any, *, scale: float) -> float:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        number = float(str(value).strip())
    except ValueError:
        return DO_NOT_RETRY
    if number < 0 or not math.isfinite(number):
        return DO_NOT_RETRY
    return number * scale
