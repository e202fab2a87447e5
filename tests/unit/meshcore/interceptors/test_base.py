"""The one override point covers all four RPC shapes, wraps each method once, sees stream errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from meshcore import context as call_context
from meshcore.context import Principal
from meshcore.interceptors import ErrorMappingInterceptor, RpcMethod, ServerInterceptor
from meshcore.interceptors.base import Behavior

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    BIDI,
    CLIENT_STREAM,
    SERVER_STREAM,
    UNARY,
    EchoFactory,
    settle,
)


class Recorder(ServerInterceptor):
    """Records each call's method and shape and how it ended, stream errors included."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.outcomes: list[str] = []
        self.wraps = 0

    def applies_to(self, rpc: RpcMethod) -> bool:
        self.wraps += 1
        return True

    async def intercept(
        self, method: Behavior, request_or_iterator: Any, context: Any, rpc: RpcMethod
    ) -> Any:
        self.calls.append((rpc.full_name, rpc.rpc_type))
        try:
            result = await method(request_or_iterator, context)
        except BaseException as error:
            self.outcomes.append(type(error).__name__)
            raise
        if rpc.response_streaming:
            return self._watch(result)
        self.outcomes.append("ok")
        return result

    async def _watch(self, responses: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for response in responses:
                yield response
        except BaseException as error:
            self.outcomes.append(type(error).__name__)
            raise
        self.outcomes.append("ok")


async def _requests(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def test_intercept_sees_every_rpc_shape(echo: EchoFactory) -> None:
    """One intercept override runs for unary, server-, client- and bidi-streaming calls."""
    recorder = Recorder()
    client = await echo([recorder])
    assert (await client.unary(b"a")).startswith(b"a|")
    assert len([r async for r in client.server_stream(b"b")]) == 2
    assert await client.client_stream(_requests(b"c", b"d")) == b"c,d"
    assert len([r async for r in client.bidi(_requests(b"e", b"f"))]) == 2
    assert recorder.calls == [
        (UNARY, "unary"),
        (SERVER_STREAM, "server_stream"),
        (CLIENT_STREAM, "client_stream"),
        (BIDI, "bidi_stream"),
    ]
    assert recorder.outcomes == ["ok"] * 4


async def test_each_method_is_wrapped_once(echo: EchoFactory) -> None:
    """Repeated calls reuse the cached wrapped handler instead of wrapping per call."""
    recorder = Recorder()
    client = await echo([recorder])
    for _ in range(5):
        await client.unary(b"x")
        [r async for r in client.server_stream(b"x")]
    assert recorder.wraps == 2
    assert len(recorder.calls) == 10


async def test_errors_raised_while_streaming_reach_outer_interceptors(echo: EchoFactory) -> None:
    """An exception raised after a stream yielded is seen by the interceptor around it."""
    recorder = Recorder()
    client = await echo([recorder, ErrorMappingInterceptor()])
    received: list[bytes] = []

    async def drain() -> None:
        async for reply in client.server_stream(b"invalid"):
            received.append(reply)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await drain()
    await settle()
    assert len(received) == 2
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert recorder.outcomes == ["AbortError"]


async def test_sync_and_writer_style_handlers_are_supported(echo: EchoFactory) -> None:
    """A sync unary handler and a context.write() stream handler still run behind the wrapper."""

    def sync_unary(request: bytes, context: Any) -> bytes:
        return request.upper()

    async def writer_stream(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.write(request)
        await context.write(request)

    handler = grpc.method_handlers_generic_handler(
        "test.v1.Styles",
        {
            "Sync": grpc.unary_unary_rpc_method_handler(sync_unary),
            "Writer": grpc.unary_stream_rpc_method_handler(writer_stream),
        },
    )
    server = grpc.aio.server(interceptors=[Recorder()])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await channel.unary_unary("/test.v1.Styles/Sync")(b"hi") == b"HI"
            replies = [r async for r in channel.unary_stream("/test.v1.Styles/Writer")(b"w")]
            assert replies == [b"w", b"w"]
    finally:
        await server.stop(None)


class SetsPrincipal(ServerInterceptor):
    async def intercept(
        self, method: Behavior, request_or_iterator: Any, context: Any, rpc: RpcMethod
    ) -> Any:
        if request_or_iterator == b"login":
            call_context.call_state().principal = Principal(subject="alice", kind="user")
        return await method(request_or_iterator, context)


async def test_context_set_for_one_call_does_not_leak_into_the_next(echo: EchoFactory) -> None:
    """Each RPC runs in its own task: a principal set for one call is gone in the next."""
    client = await echo([SetsPrincipal()])
    assert (await client.unary(b"login")).split(b"|")[1] == b"alice"
    assert (await client.unary(b"anon")).split(b"|")[1] == b"-"
