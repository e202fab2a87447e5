"""The one place where exceptions become gRPC statuses.

* ``MeshError`` subclasses carry their own code, a message that is safe to show, and the
  ``google.rpc`` details every client can read from ``grpc-status-details-bin`` (with
  ``grpc_status.rpc_status.from_call``): always ``ErrorInfo`` (a stable ``reason``, the ``domain``
  = the proto package of the called service, string ``metadata``); ``BadRequest`` with every
  field violation of an ``InvalidArgument``; ``ResourceInfo`` for ``NotFound``; ``RetryInfo``
  when ``retry_after`` is set, also as a ``retry-after`` trailer in whole seconds, for clients
  that only look at metadata.
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
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from meshcore.context import current_request_id
from meshcore.errors import (
    Cancelled,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    MeshError,
    NotFound,
    Unavailable,
    new_correlation_id,
)
from meshcore.interceptors.base import Behavior, RpcMethod, ServerInterceptor
from meshcore.reasons import Reason

__all__ = [
    "RETRY_AFTER_TRAILER",
    "ErrorMappingInterceptor",
    "abort_with",
    "error_domain",
    "status_trailers",
]

RETRY_AFTER_TRAILER = "retry-after"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_PASSED_THROUGH_DOWNSTREAM_ERRORS: dict[grpc.StatusCode, tuple[type[MeshError], str | None]] = {
    grpc.StatusCode.UNAVAILABLE: (Unavailable, Reason.DEPENDENCY_UNAVAILABLE),
    grpc.StatusCode.DEADLINE_EXCEEDED: (DeadlineExceeded, None),
    grpc.StatusCode.CANCELLED: (Cancelled, None),
}

_log = logging.getLogger("meshcore.interceptors.errors")


def error_domain(rpc: RpcMethod) -> str:
    """``ErrorInfo.domain``: the called service's proto package (``zoptal.billing.v1``), whose
    proto file documents the reasons."""
    package, _, _ = rpc.service.rpartition(".")
    return package or rpc.service


def _details(error: MeshError, domain: str) -> list[Message]:
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    ]
    if isinstance(error, InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=violation.field, description=violation.problem
                    )
                    for violation in error.violations
                ]
            )
        )
    elif isinstance(error, NotFound):
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type=error.kind,
                resource_name=error.identifier,
                description=error.message,
            )
        )
    if error.retry_after is not None:
        retry_after = max(0.0, error.retry_after)
        seconds = math.floor(retry_after)
        delay = duration_pb2.Duration(seconds=seconds, nanos=int((retry_after - seconds) * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    return details


def status_trailers(error: MeshError, domain: str) -> tuple[tuple[str, str | bytes], ...]:
    """Trailing metadata for ``error``: its ``google.rpc.Status`` with details, and with a
    ``retry_after`` also the ``retry-after`` trailer."""
    packed = []
    for detail in _details(error, domain):
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=packed)
    trailers: tuple[tuple[str, str | bytes], ...] = (
        (_STATUS_DETAILS_KEY, status.SerializeToString()),
    )
    if error.retry_after is not None:
        whole_seconds = str(max(1, math.ceil(error.retry_after)))
        trailers += ((RETRY_AFTER_TRAILER, whole_seconds),)
    return trailers


async def abort_with(
    context: grpc.aio.ServicerContext[Any, Any], error: MeshError, rpc: RpcMethod
) -> NoReturn:
    """End the call with ``error``'s status: for interceptors that run outside error mapping."""
    await context.abort(
        error.code, error.message, trailing_metadata=status_trailers(error, error_domain(rpc))
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
        await abort_with(context, self._mesh_error(error, rpc), rpc)

    def _mesh_error(self, error: Exception, rpc: RpcMethod) -> MeshError:
        if isinstance(error, MeshError):
            return error
        if isinstance(error, grpc.aio.AioRpcError):
            downstream = error.code()
            passed_through = _PASSED_THROUGH_DOWNSTREAM_ERRORS.get(downstream)
            if passed_through is not None:
                error_type, reason = passed_through
                self._log.warning(
                    "downstream call failed with %s",
                    downstream.name,
                    extra={"grpc_method": rpc.full_name, "request_id": current_request_id()},
                )
                return error_type(f"a dependency failed: {downstream.name}", reason=reason)
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
        return Internal(correlation_id)
