"""meshcore_rate_limit_rejections_total counts every call the limiter refuses, from zero, with
the in-process limiter and with a remote one (the Redis limiter's path)."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from meshcore.interceptors import RateLimitInterceptor
from meshcore.interceptors.limiters import Decision
from prometheus_client import CollectorRegistry

from tests.unit.meshcore.interceptors.interceptor_testkit import EchoFactory

REJECTIONS = "meshcore_rate_limit_rejections_total"


class RefusingAfter:
    """A remote-style limiter (``hit`` is awaited) that admits ``allowed`` calls."""

    def __init__(self, allowed: int) -> None:
        self.left = allowed

    async def hit(self, key: str) -> Decision:
        self.left -= 1
        return Decision(self.left >= 0, 0.0 if self.left >= 0 else 1.5)


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "remote"])
async def test_refusals_are_counted(echo: EchoFactory, remote: bool) -> None:
    registry = CollectorRegistry()
    limiter = RateLimitInterceptor(
        60_000, 2, registry=registry, limiter=RefusingAfter(2) if remote else None
    )
    client = await echo([limiter])
    assert registry.get_sample_value(REJECTIONS) == 0
    await client.unary(b"a")
    await client.unary(b"b")
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.unary(b"c")
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert registry.get_sample_value(REJECTIONS) == 3
