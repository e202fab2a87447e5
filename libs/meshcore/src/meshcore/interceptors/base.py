"""One override point for every RPC shape, with each method's handler wrapped once and cached.

After d5h-foss/grpc-interceptor's ``intercept(method, request_or_iterator, context, method_name)``,
but asyncio-first and built for the hot path:

* ``intercept`` is a coroutine for all four shapes. ``await method(request_or_iterator, context)``
  returns the response message for unary-response RPCs and an async iterator of responses for
  response-streaming ones; ``intercept`` returns the same kind of thing.
* An interceptor that must see what happens *while* a response stream is iterated (errors,
  message counts, the final status) returns its own async generator over the stream; nothing
  in a stream escapes the interceptors wrapped around it.
* The handler for a method is wrapped once per (method, inner handler) and cached; a call then
  costs one dictionary lookup plus the interceptors' own work.
* Several interceptors can be fused into one ``grpc.aio.ServerInterceptor`` (``InterceptorChain``
  in ``meshcore.interceptors.chain``): the next handler is looked up once per call instead of once
  per interceptor, and layers that only admit or only observe (``meshcore.interceptors.hooks``)
  run inside one coroutine instead of one per layer.

``RpcMethod`` describes the method (full name, service, short name, ``grpc_type``) once, so
interceptors key their per-method state (Prometheus children, permission lists) on it instead of
parsing names per call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import grpc
import grpc.aio

from meshcore.context import CallState, begin_call, call_state, current_call
from meshcore.errors import InvalidArgument
from meshcore.interceptors.decoding import decode_request, decode_stream

__all__ = [
    "Behavior",
    "RpcMethod",
    "RpcType",
    "ServerInterceptor",
    "call_metadata",
    "served_call",
    "wrap_handler",
]

RpcType = Literal["unary", "server_stream", "client_stream", "bidi_stream"]
"""The ``grpc_type`` label values Prometheus gRPC dashboards already use."""

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:  # the stubs make it generic, the runtime class is not
    Handler = grpc.RpcMethodHandler

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
"""The ``method`` handed to ``intercept``: awaiting it runs the rest of the chain."""


def call_metadata(context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    """The call's invocation metadata, read once per call.

    ``context.invocation_metadata()`` builds a new tuple on every call; grpc already built one
    for the interceptors, which ``intercept_service`` keeps in the call's ``CallState``. It is
    handed out only for the ServicerContext the handler's entry bound it to, so a task that a
    handler starts cannot take it for a different call.
    """
    state = current_call()
    if state.servicer_context is context and state.metadata is not None:
        return state.metadata
    return context.invocation_metadata() or ()


def served_call(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[CallState, Any]:
    """The call's state, to write into, and its metadata: for interceptors, in one lookup."""
    state = current_call()
    if state.servicer_context is context:  # the state intercept_service began for this call
        return state, state.metadata
    return call_state(), call_metadata(context)  # a layer used without intercept_service


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """A gRPC method, parsed once: ``/pkg.Service/Method`` into its parts and its shape."""

    full_name: str
    service: str
    name: str
    request_streaming: bool
    response_streaming: bool

    @property
    def rpc_type(self) -> RpcType:
        if self.request_streaming:
            return "bidi_stream" if self.response_streaming else "client_stream"
        return "server_stream" if self.response_streaming else "unary"

    @classmethod
    def parse(cls, full_name: str, handler: Handler) -> RpcMethod:
        return _parse_method(full_name, handler.request_streaming, handler.response_streaming)

    @classmethod
    def parse_call(
        cls, method: str | bytes, request_streaming: bool, response_streaming: bool
    ) -> RpcMethod:
        """A client call's method (``ClientCallDetails.method``: bytes in grpc.aio), of the
        shape the client interceptor that sees it handles."""
        return _parse_method(method, request_streaming, response_streaming)


@functools.lru_cache(maxsize=4096)
def _parse_method(
    method: str | bytes, request_streaming: bool, response_streaming: bool
) -> RpcMethod:
    # Cached by the name as given, bytes included: a client call decodes it once per method.
    full_name = method.decode() if isinstance(method, bytes) else method
    service, _, name = full_name.lstrip("/").rpartition("/")
    return RpcMethod(
        full_name=full_name,
        service=service or "unknown",
        name=name or full_name,
        request_streaming=request_streaming,
        response_streaming=response_streaming,
    )


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Base of meshcore's server interceptors: override ``intercept`` only.

    Usable on its own (``grpc.aio.server(interceptors=[MyInterceptor()])``) or fused into an
    ``InterceptorChain``.
    """

    _wrapped: dict[str, tuple[Handler, Handler]]

    def __init__(self) -> None:
        self._wrapped = {}

    async def intercept(
        self,
        method: Behavior,
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: RpcMethod,
    ) -> Any:
        """Run around one call. The default passes the call through unchanged."""
        return await method(request_or_iterator, context)

    def applies_to(self, rpc: RpcMethod) -> bool:
        """Whether this interceptor wraps ``rpc`` at all; False makes it free for that method."""
        return True

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        # intercept_service runs in the call's own task, before the handler: keep the metadata.
        begin_call(handler_call_details.invocation_metadata)
        method_name: str = handler_call_details.method
        try:
            cache = self._wrapped
        except AttributeError:  # a subclass whose __init__ did not call ours
            cache = self._wrapped = {}
        cached = cache.get(method_name)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = wrap_handler(handler, (self,), method_name)
        cache[method_name] = (handler, wrapped)
        return wrapped


def wrap_handler(
    handler: Handler,
    interceptors: Sequence[ServerInterceptor],
    method_name: str,
) -> Handler:
    """A handler that runs ``interceptors`` (outermost first) around ``handler``."""
    rpc = RpcMethod.parse(method_name, handler)
    active = [interceptor for interceptor in interceptors if interceptor.applies_to(rpc)]
    if not active:
        return handler
    return handler_with_behavior(handler, rpc, nest(active, innermost_behavior(handler, rpc), rpc))


def nest(interceptors: Sequence[ServerInterceptor], inner: Behavior, rpc: RpcMethod) -> Behavior:
    """``inner`` wrapped in each interceptor's ``intercept``, the first one outermost."""
    behavior = inner
    for interceptor in reversed(interceptors):
        # A partial (C code) instead of a closure: one coroutine frame per layer, not two.
        behavior = functools.partial(interceptor.intercept, behavior, rpc=rpc)
    return behavior


def handler_with_behavior(handler: Handler, rpc: RpcMethod, behavior: Behavior) -> Handler:
    """A grpc handler of ``handler``'s shape that decodes requests itself and runs ``behavior``.

    grpc gets no request deserializer: ``meshcore.interceptors.decoding`` turns a malformed body
    into INVALID_ARGUMENT instead of grpc's UNKNOWN with a parser exception in it.
    """
    deserializer = handler.request_deserializer
    serializer = {"response_serializer": handler.response_serializer}
    if rpc.response_streaming:
        streaming = _stream_entry(behavior, deserializer, rpc.request_streaming)
        if rpc.request_streaming:
            return grpc.stream_stream_rpc_method_handler(streaming, **serializer)
        return grpc.unary_stream_rpc_method_handler(streaming, **serializer)
    entry = _unary_entry(behavior, deserializer, rpc.request_streaming)
    if rpc.request_streaming:
        return grpc.stream_unary_rpc_method_handler(entry, **serializer)
    return grpc.unary_unary_rpc_method_handler(entry, **serializer)


def _bind(context: Any) -> None:
    """Tie the metadata ``intercept_service`` kept to the call's ServicerContext, once.

    Both entries call it: an entry runs in the call's task right after ``intercept_service``
    began the call's state, before any code of the application's could start a task.
    """
    state = current_call()
    if state.servicer_context is None and state.metadata is not None:
        state.servicer_context = context


def _decoder(request_streaming: bool) -> Callable[[Any, Any], Any]:
    """``decode(raw, deserializer)`` for the method's requests, chosen once per method.

    A unary body that does not decode raises ``InvalidArgument`` in the entry, which answers it.
    A stream is decoded as the handler reads it; a bad message raises ``InvalidArgument`` inside
    the chain, where the error mapping answers INVALID_ARGUMENT.
    """
    return decode_stream if request_streaming else decode_request


async def _refuse(context: Any, rejected: InvalidArgument) -> None:
    # Before the chain: nothing else has seen this call, so answer it here.
    await context.abort(rejected.code, rejected.message)


def _unary_entry(behavior: Behavior, deserializer: Any, request_streaming: bool) -> Behavior:
    """A plain coroutine function: grpc calls ``inspect.iscoroutinefunction`` on the handler
    for every call, which is quick for a function and slow for a ``functools.partial``."""

    decode = _decoder(request_streaming)

    async def unary(raw: Any, context: Any) -> Any:
        _bind(context)
        try:
            request = decode(raw, deserializer)
        except InvalidArgument as rejected:
            return await _refuse(context, rejected)
        return await behavior(request, context)

    return unary


def _stream_entry(
    behavior: Behavior, deserializer: Any, request_streaming: bool
) -> Callable[[Any, Any], AsyncIterator[Any]]:
    """grpc.aio treats an async generator function as a response stream: be one."""

    decode = _decoder(request_streaming)

    async def stream(raw: Any, context: Any) -> AsyncIterator[Any]:
        _bind(context)
        try:
            request = decode(raw, deserializer)
        except InvalidArgument as rejected:
            await _refuse(context, rejected)
            return
        responses = await behavior(request, context)
        async for response in responses:
            yield response

    return stream


def innermost_behavior(handler: Handler, rpc: RpcMethod) -> Behavior:
    """Adapt the real handler, whatever its style, to the ``Behavior`` contract."""
    function: Callable[..., Any] = _handler_function(handler)
    if not rpc.response_streaming:
        if inspect.iscoroutinefunction(function):
            return function
        return _in_executor(function)

    async def streaming(request_or_iterator: Any, context: Any) -> AsyncIterator[Any]:
        result = function(request_or_iterator, context)
        if hasattr(result, "__anext__"):
            return result  # type: ignore[no-any-return]
        if inspect.isawaitable(result):
            # Reader/writer style: the handler calls context.write() and returns None.
            return _await_then_end(result)
        return _sync_iterator(result)

    return streaming


async def _await_then_end(awaitable: Awaitable[Any]) -> AsyncIterator[Any]:
    await awaitable
    return
    yield  # pragma: no cover - makes this an async generator that yields nothing


async def _sync_iterator(iterator: Any) -> AsyncIterator[Any]:
    loop = asyncio.get_running_loop()
    sentinel = object()
    context = contextvars.copy_context()
    iterator = iter(iterator)
    while True:
        item = await loop.run_in_executor(None, context.run, _next_or, iterator, sentinel)
        if item is sentinel:
            return
        yield item


def _next_or(iterator: Any, sentinel: object) -> Any:
    return next(iterator, sentinel)


def _in_executor(function: Callable[[Any, Any], Any]) -> Behavior:
    """Sync unary handlers run in the default executor, as grpc.aio itself would run them."""

    async def behavior(request_or_iterator: Any, context: Any) -> Any:
        loop = asyncio.get_running_loop()
        call_context = contextvars.copy_context()
        return await loop.run_in_executor(
            None, call_context.run, function, request_or_iterator, context
        )

    return behavior


def _handler_function(handler: Handler) -> Callable[..., Any]:
    function = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    if function is None:
        raise TypeError("an RpcMethodHandler without a behaviour cannot be intercepted")
    return function
