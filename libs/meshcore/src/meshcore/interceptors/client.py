"""Client interceptors: every downstream call carries the inbound call's context.

``ContextPropagationInterceptor`` adds to each outgoing call

* ``x-request-id``: the current call's request id (or a fresh one outside any call);
* ``traceparent``: the current OpenTelemetry span's, else the caller's one forwarded as-is;
* ``x-service-token``: this service's own token, so the callee knows who is calling;
* a timeout: the smallest of the explicit one, the configured default and the time left on
  the inbound call. A budget that is already spent fails at once with DEADLINE_EXCEEDED,
  without touching the network.

``meshcore.interceptors.client_stack.build_client_interceptors`` returns the default stack in
order (metrics, tracing, propagation), ready for ``grpc.aio.insecure_channel(...,
interceptors=...)``. Each interceptor class handles all four RPC shapes through
``ClientInterceptor.intercept``; ``channel_interceptors`` adapts any of them for a channel, and
``when_finished`` reports a call's end whatever its shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import grpc.aio
from opentelemetry import trace

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import (
    current_request_id,
    inbound_deadline,
    inbound_traceparent,
    new_request_id as _new_request_id,
)
from meshcore.interceptors.auth import SERVICE_TOKEN_HEADER
from meshcore.interceptors.base import RpcMethod
from meshcore.interceptors.call_context import REQUEST_ID_HEADER, TRACEPARENT_HEADER
from meshcore.interceptors.tracing import PROPAGATOR

__all__ = [
    "ClientInterceptor",
    "ContextPropagationInterceptor",
    "TokenProvider",
    "channel_interceptors",
    "spent_deadline_error",
    "when_finished",
]

TokenProvider = Callable[[], str | None]


class ClientInterceptor:
    """One override point, ``intercept``, for all four client RPC shapes.

    As on the server side (``ServerInterceptor.intercept``), ``intercept`` is handed the call's
    method parsed once (``RpcMethod``: service, name and shape), so no interceptor decodes
    ``details.method`` itself.

    Give a channel ``channel_interceptors(...)`` of these, not the objects themselves: grpc.aio
    files an interceptor under the *first* shape interface it implements only, so one object
    implementing all four would silently skip streaming calls.
    """

    async def intercept(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        details: grpc.aio.ClientCallDetails,
        request_or_iterator: Any,
        rpc: RpcMethod,
    ) -> Any:
        return await continuation(details, request_or_iterator)


class _Shape:
    """``inner`` as one grpc.aio shape interface, after OpenTelemetry's aio client
    instrumentation: this base does the work, the thin classes below name the shape."""

    request_streaming: bool
    response_streaming: bool

    def __init__(self, inner: ClientInterceptor) -> None:
        self.inner = inner

    def call(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request_or_iterator: Any
    ) -> Coroutine[Any, Any, Any]:
        """``inner.intercept``'s coroutine, for grpc to await: no coroutine of our own around
        it. The parse is cached per method name and shape: one dictionary lookup per call."""
        rpc = RpcMethod.parse_call(details.method, self.request_streaming, self.response_streaming)
        return self.inner.intercept(continuation, details, request_or_iterator, rpc)


class _UnaryUnary(_Shape, grpc.aio.UnaryUnaryClientInterceptor):
    request_streaming, response_streaming = False, False

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Coroutine[Any, Any, Any]:
        return self.call(continuation, client_call_details, request)


class _UnaryStream(_Shape, grpc.aio.UnaryStreamClientInterceptor):
    request_streaming, response_streaming = False, True

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Coroutine[Any, Any, Any]:
        return self.call(continuation, client_call_details, request)


class _StreamUnary(_Shape, grpc.aio.StreamUnaryClientInterceptor):
    request_streaming, response_streaming = True, False

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Coroutine[Any, Any, Any]:
        return self.call(continuation, client_call_details, requests)


class _StreamStream(_Shape, grpc.aio.StreamStreamClientInterceptor):
    request_streaming, response_streaming = True, True

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Coroutine[Any, Any, Any]:
        return self.call(continuation, client_call_details, requests)


def channel_interceptors(*interceptors: ClientInterceptor) -> list[grpc.aio.ClientInterceptor]:
    """The grpc.aio interceptors for ``interceptors`` (outermost first), all four shapes."""
    adapted: list[grpc.aio.ClientInterceptor] = []
    for adapter in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream):
        adapted.extend(adapter(interceptor) for interceptor in interceptors)
    return adapted


def spent_deadline_error(method: str) -> grpc.aio.AioRpcError:
    """The error a call gets when the inbound call's deadline has already passed."""
    return grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details=f"deadline already spent before calling {method}",
    )


class ContextPropagationInterceptor(ClientInterceptor):
    """Request id, trace context, caller identity and the remaining deadline, downstream."""

    def __init__(
        self,
        *,
        default_timeout: float | None = None,
        service_token: str | TokenProvider | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._default_timeout = default_timeout
        self._token_provider: TokenProvider | None = (
            (lambda: service_token) if isinstance(service_token, str) else service_token
        )
        self._clock = clock

    def timeout_for(self, explicit: float | None) -> float | None:
        """min(explicit, default, time left on the inbound call); None means no deadline."""
        timeout = explicit
        if self._default_timeout is not None and (
            timeout is None or self._default_timeout < timeout
        ):
            timeout = self._default_timeout
        deadline = inbound_deadline()
        if deadline is not None:
            left = deadline - self._clock.monotonic()
            if timeout is None or left < timeout:
                timeout = left
        return timeout

    async def intercept(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        details: grpc.aio.ClientCallDetails,
        request_or_iterator: Any,
        rpc: RpcMethod,
    ) -> Any:
        timeout = self.timeout_for(details.timeout)
        if timeout is not None and timeout <= 0:
            raise spent_deadline_error(rpc.full_name)
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if metadata.get(REQUEST_ID_HEADER) is None:
            metadata[REQUEST_ID_HEADER] = current_request_id() or _new_request_id()
        if metadata.get(TRACEPARENT_HEADER) is None:
            self._add_traceparent(metadata)
        if self._token_provider is not None and metadata.get(SERVICE_TOKEN_HEADER) is None:
            token = self._token_provider()
            if token:
                metadata[SERVICE_TOKEN_HEADER] = token
        new_details = details._replace(metadata=metadata, timeout=timeout)  # type: ignore[attr-defined]
        return await continuation(new_details, request_or_iterator)

    @staticmethod
    def _add_traceparent(metadata: grpc.aio.Metadata) -> None:
        if trace.get_current_span().get_span_context().is_valid:
            carrier: dict[str, str] = {}
            PROPAGATOR.inject(carrier)
            for key, value in carrier.items():
                metadata[key] = value
            return
        traceparent = inbound_traceparent()
        if traceparent:
            metadata[TRACEPARENT_HEADER] = traceparent


# Calls whose end is being reported; a strong reference until each report has run.
_background: set[asyncio.Task[None]] = set()


def when_finished(call: Any, callback: Callable[[str], None]) -> None:
    """Run ``callback(code name)`` once ``call`` has ended, whatever its shape."""

    async def report() -> None:
        try:
            code = await call.code()
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
        callback(code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN")

    def done(_: Any) -> None:
        task = asyncio.ensure_future(report())
        _background.add(task)
        task.add_done_callback(_background.discard)

    call.add_done_callback(done)
