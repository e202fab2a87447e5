"""The one place where exceptions become gRPC statuses.

* ``MeshError`` subclasses carry their own code and a message that is safe to show.
* ``ResourceExhausted``/``Unavailable`` with ``retry_after`` also send ``google.rpc.RetryInfo``
  (in ``grpc-status-details-bin``, read with ``grpc_status.rpc_status.from_call``) and a
  ``retry-after`` trailer in whole seconds, for clients that only look at metadata.
* A failed downstream call (``grpc.aio.AioRpcError``) is not passed through verbatim: its
  UNAVAILABLE/DEADLINE_EXCEEDED/CANCELLED say something true about this call too, anything else
  is our fault and becomes INTERNAL.
* Anything else is logged with its stack trace under a correlation id, and the client sees only
  INTERNAL with that id: never a stack trace, never ``UNKNOWN``.

Exceptions raised while a response stream is iterated are mapped the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
import grpc.aio
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from meshcore.context import current_request_id
from meshcore.errors import MeshError, ResourceExhausted, Unavailable, new_correlation_id
from meshcore.interceptors.base import Behavior, RpcMethod, ServerInterceptor

__all__ = ["RETRY_AFTER_TRAILER", "ErrorMappingInterceptor", "abort_with", "status_trailers"]

RETRY_AFTER_TRAILER = "retry-after"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_PASSED_THROUGH_DOWNSTREAM_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)

_log = logging.getLogger("meshcore.interceptors.errors")


def status_trailers(
    code: grpc.StatusCode, message: str, *, retry_after: float | None = None
) -> tuple[tuple[str, str | bytes], ...]:
    """Trailing metadata for a status; with ``retry_after``, RetryInfo and ``retry-after``."""
    if retry_after is None:
        return ()
    retry_after = max(0.0, retry_after)
    seconds = math.floor(retry_after)
    delay = duration_pb2.Duration(seconds=seconds, nanos=int((retry_after - seconds) * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (
        (_STATUS_DETAILS_KEY, status.SerializeToString()),
        (RETRY_AFTER_TRAILER, str(max(1, math.ceil(retry_after)))),
    )


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: MeshError) -> NoReturn:
    """End the call with ``error``'s status: for interceptors that run outside error mapping."""
    retry_after = error.retry_after if isinstance(error, ResourceExhausted | Unavailable) else None
    await context.abort(
        error.code,
        error.message,
        trailing_metadata=status_trailers(error.code, error.message, retry_after=retry_after),
    )
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


class ErrorMappingInterceptor(ServerInterceptor):
    """Innermost interceptor: maps whatever the handler raised to a status and ends the call."""

    def __init__(self, *, logger: logging.Logger | None = None) -> None:
        super().__init__()
        self._log = logger or _log

    async def intercept(
        self,
        method: Behavior,
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: RpcMethod,
    ) -> Any:
        try:
            result = await method(request_or_iterator, context)
        except Exception as error:
            await self.abort(error, context, rpc)
        if rpc.response_streaming:
            return self.guard_stream(result, context, rpc)
        return result

    async def guard_stream(
        self,
        responses: AsyncIterator[Any],
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: RpcMethod,
    ) -> AsyncIterator[Any]:
        """``responses``, with an exception raised while iterating them mapped like any other."""
        try:
            async for response in responses:
                yield response
        except Exception as error:
            await self.abort(error, context, rpc)

    async def abort(
        self, error: Exception, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod
    ) -> NoReturn:
        """End the call with the status ``error`` maps to (always raises)."""
        if isinstance(error, grpc.aio.AbortError):
            raise error  # the handler (or an inner library) already chose the status
        code, message, retry_after = self._status_for(error, rpc)
        await context.abort(
            code, message, trailing_metadata=status_trailers(code, message, retry_after=retry_after)
        )
        raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises

    def _status_for(
        self, error: Exception, rpc: RpcMethod
    ) -> tuple[grpc.StatusCode, str, float | None]:
        if isinstance(error, MeshError):
            retry_after = (
                error.retry_after if isinstance(error, ResourceExhausted | Unavailable) else None
            )
            return error.code, error.message, retry_after
        if isinstance(error, grpc.aio.AioRpcError):
            downstream = error.code()
            if downstream in _PASSED_THROUGH_DOWNSTREAM_CODES:
                self._log.warning(
                    "downstream call failed with %s",
                    downstream.name,
                    extra={"grpc_method": rpc.full_name, "request_id": current_request_id()},
                )
                return downstream, f"a dependency failed: {downstream.name}", None
        correlation_id = new_correlation_id()
        self._log.error(
            "unhandled error in %s (correlation id %s)",
            rpc.full_name,
            correlation_id,
            exc_info=error,
            extra={
                "grpc_method": rpc.full_name,
                "correlation_id": correlation_id,
                "request_id": current_request_id(),
            },
        )
        return grpc.StatusCode.INTERNAL, f"internal error (correlation id {correlation_id})", None
