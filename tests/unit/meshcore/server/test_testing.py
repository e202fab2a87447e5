"""meshcore.testing: the in-process server."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshcore.server import ServiceRegistration
from meshcore.testing import serve_in_process


async def test_in_process_server_uses_the_production_interceptors(
    echo_service: ServiceRegistration,
) -> None:
    """By default the helper serves behind the production chain: no credentials, no call."""
    async with serve_in_process([echo_service]) as (address, channel):
        assert address.startswith("127.0.0.1:")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/meshtest.Echo/Echo")(b"hi", timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_in_process_server_takes_explicit_interceptors(
    echo_service: ServiceRegistration,
) -> None:
    """Given interceptors replace the production chain (here: none at all)."""
    async with serve_in_process([echo_service], interceptors=[]) as (_, channel):
        assert await channel.unary_unary("/meshtest.Echo/Echo")(b"hi", timeout=5) == b"hi"
