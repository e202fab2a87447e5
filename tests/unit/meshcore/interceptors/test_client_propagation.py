"""Client interceptors: request id, service token and shrinking deadlines travel downstream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import pytest
from meshcore.context import call_scope
from meshcore.interceptors import (
    AuthInterceptor,
    CallContextInterceptor,
    ContextPropagationInterceptor,
    RpcMethod,
    channel_interceptors,
)
from meshcore.interceptors.client import ClientInterceptor
from meshcore.testing import FakeClock

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    SERVICE,
    SERVICE_SECRET,
    EchoFactory,
    service_token,
)


def test_timeout_is_the_smallest_of_explicit_default_and_time_left() -> None:
    """min(explicit, default, remaining inbound budget), or None when none applies."""
    clock = FakeClock()
    propagation = ContextPropagationInterceptor(default_timeout=5.0, clock=clock)
    assert propagation.timeout_for(None) == 5.0
    assert propagation.timeout_for(2.0) == 2.0
    with call_scope(deadline=clock.monotonic() + 1.5):
        assert propagation.timeout_for(2.0) == pytest.approx(1.5)
        clock.advance(1.0)
        assert propagation.timeout_for(None) == pytest.approx(0.5)
    assert ContextPropagationInterceptor().timeout_for(None) is None


async def _one(item: bytes) -> AsyncIterator[bytes]:
    yield item


class _Recording(ClientInterceptor):
    def __init__(self) -> None:
        self.seen: list[RpcMethod] = []

    async def intercept(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        details: grpc.aio.ClientCallDetails,
        request_or_iterator: Any,
        rpc: RpcMethod,
    ) -> Any:
        self.seen.append(rpc)
        return await continuation(details, request_or_iterator)


async def test_intercept_gets_the_method_parsed_with_its_shape(echo: EchoFactory) -> None:
    """Every shape hands ``intercept`` the same parsed ``RpcMethod`` per method and shape,
    as the server side does: no client interceptor decodes ``details.method`` itself."""
    outer, inner = _Recording(), _Recording()
    client = await echo([], channel_interceptors(outer, inner))
    await client.unary(b"u")
    await client.unary(b"again")
    [r async for r in client.server_stream(b"s")]
    await client.client_stream(_one(b"c"))
    [r async for r in client.bidi(_one(b"b"))]
    assert [(rpc.service, rpc.name, rpc.rpc_type) for rpc in outer.seen] == [
        (SERVICE, "Unary", "unary"),
        (SERVICE, "Unary", "unary"),
        (SERVICE, "ServerStream", "server_stream"),
        (SERVICE, "ClientStream", "client_stream"),
        (SERVICE, "Bidi", "bidi_stream"),
    ]
    assert outer.seen[0].full_name == f"/{SERVICE}/Unary"
    # Parsed once per method and shape, then shared by every interceptor and every call.
    assert outer.seen[0] is outer.seen[1] is inner.seen[0]
    assert [a is b for a, b in zip(outer.seen, inner.seen, strict=True)] == [True] * 5


async def test_request_id_and_service_token_reach_the_server_in_every_shape(
    echo: EchoFactory,
) -> None:
    """The callee sees our request id and authenticates us by our service token."""
    token = service_token(time.time())
    client = await echo(
        [CallContextInterceptor(), AuthInterceptor(service_token_secret=SERVICE_SECRET)],
        channel_interceptors(ContextPropagationInterceptor(service_token=token)),
    )
    with call_scope(request_id="req-42"):
        replies = [
            await client.unary(b"u"),
            *[r async for r in client.server_stream(b"s")][:1],
            *[r async for r in client.bidi(_one(b"b"))],
        ]
        assert await client.client_stream(_one(b"c")) == b"c"
    assert [reply.split(b"|")[1:] for reply in replies] == [[b"billing", b"req-42"]] * 3


async def test_a_spent_budget_fails_fast_without_calling(echo: EchoFactory) -> None:
    """With the inbound deadline already passed, the call is DEADLINE_EXCEEDED at once."""
    clock = FakeClock()
    client = await echo([], channel_interceptors(ContextPropagationInterceptor(clock=clock)))
    with call_scope(deadline=clock.monotonic() - 0.001):
        started = time.perf_counter()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.unary(b"x")
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "already spent" in (raised.value.details() or "")
    assert time.perf_counter() - started < 0.5
