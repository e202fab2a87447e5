"""Channel options a caller passes are laid over meshcore's defaults by name, on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from meshcore.discovery.channels import ChannelPool
from meshcore.message_size import MAX_RECEIVE_MESSAGE_BYTES_CEILING, MAX_RESPONSE_BYTES

REPLY = "/optiontest.Sized/Reply"
FIVE_MIB = 5 * 1024 * 1024


@pytest.fixture
async def sized_server() -> AsyncIterator[str]:
    """A server whose one method answers with as many bytes as the request names."""

    async def reply(request: bytes, context: object) -> bytes:
        return b"x" * int(request)

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(reply)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("optiontest.Sized", {"Reply": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def _code(pool: ChannelPool, address: str, size: int) -> grpc.StatusCode:
    try:
        call = pool.channel(address).unary_unary(REPLY)(str(size).encode(), timeout=10)
        return await call.code()
    finally:
        await pool.close()


async def test_an_override_replaces_its_default(sized_server: str) -> None:
    """A lower receive limit takes effect (appended after the default, grpc would ignore it)."""
    limited = ChannelPool(options=[("grpc.max_receive_message_length", 1000)])
    assert await _code(limited, sized_server, 5000) == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_defaults_an_override_does_not_name_stay(sized_server: str) -> None:
    """Passing one unrelated option keeps meshcore's size limits: replies over the 4 MiB every
    stack reads by default fail, and so does, locally, a request over the largest receive limit
    a meshcore server may have (grpc's own client would send it)."""

    def pool() -> ChannelPool:
        return ChannelPool(options=[("grpc.keepalive_time_ms", 45_000)])

    assert await _code(pool(), sized_server, FIVE_MIB) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await _code(pool(), sized_server, MAX_RESPONSE_BYTES - 64) == grpc.StatusCode.OK
    sender = pool()
    try:
        rpc = sender.channel(sized_server).unary_unary(REPLY)
        call = rpc(b"1".ljust(MAX_RECEIVE_MESSAGE_BYTES_CEILING + 1, b" "), timeout=10)
        assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "Sent message larger than max" in str(await call.details())
    finally:
        await sender.close()
