"""A typed client against real generated-servicer replicas: calls, retries, mesh health."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from meshcore.client_manager import create_grpc_client_manager
from meshcore.mesh import create_service_mesh
from meshcore.resilience import RetryPolicy
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.clients import AuthServiceClient

from .conftest import FAST_RECONNECT

AUTH = "zoptal.auth.v1.AuthService"


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    """Answers ValidateToken and Login; can be told to fail the next calls with UNAVAILABLE."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fail_next = 0
        self.calls: list[str] = []

    async def _maybe_fail(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.calls.append(method)
        if self.fail_next:
            self.fail_next -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")

    async def ValidateToken(
        self, request: auth_pb2.ValidateTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ValidateTokenResponse:
        await self._maybe_fail("ValidateToken", context)
        valid = request.token == "good"
        return auth_pb2.ValidateTokenResponse(valid=valid, user_id="u1" if valid else "")

    async def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        await self._maybe_fail("Login", context)
        return auth_pb2.LoginResponse()


@pytest.fixture
async def auth_replica() -> AsyncIterator[tuple[str, FakeAuth, health.aio.HealthServicer]]:
    server = grpc.aio.server()
    servicer = FakeAuth("a1")
    auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set(AUTH, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer, health_servicer
    finally:
        await server.stop(None)


async def test_validate_token_follows_the_seed_example(
    auth_replica: tuple[str, FakeAuth, health.aio.HealthServicer],
) -> None:
    """AuthServiceClient(manager).validate_token(token) returns the typed reply."""
    address, _, _ = auth_replica
    host, port = address.rsplit(":", 1)
    manager = create_grpc_client_manager(
        {"authService": {"host": host, "port": int(port)}},
        interceptors=(),
        channel_options=FAST_RECONNECT,
    )
    async with manager:
        auth = AuthServiceClient(manager)
        reply = await auth.validate_token("good")
        assert isinstance(reply, auth_pb2.ValidateTokenResponse)
        assert reply.valid
        assert reply.user_id == "u1"
        assert not (await auth.validate_token("bad")).valid


async def test_reads_are_retried_and_logins_are_not(
    auth_replica: tuple[str, FakeAuth, health.aio.HealthServicer],
) -> None:
    """ValidateToken (NO_SIDE_EFFECTS) survives two UNAVAILABLEs; Login is sent only once."""
    address, servicer, _ = auth_replica
    manager = create_grpc_client_manager(
        {"auth": address},
        interceptors=(),
        channel_options=FAST_RECONNECT,
        retry=RetryPolicy(max_retries=3, base_delay=1, max_delay=5),
        health_checks=False,
    )
    async with manager:
        auth = AuthServiceClient(manager)
        servicer.fail_next = 2
        assert (await auth.validate_token("good")).valid
        assert servicer.calls == ["ValidateToken"] * 3
        servicer.fail_next = 1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await auth.login("a@example.com", "pw")
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert servicer.calls.count("Login") == 1


async def test_mesh_health_check_reports_each_service_state(
    auth_replica: tuple[str, FakeAuth, health.aio.HealthServicer],
) -> None:
    """mesh.health_check() probes grpc.health.v1 for the service the typed client speaks."""
    address, _, health_servicer = auth_replica
    mesh = create_service_mesh(
        {
            "services": {
                "auth-service": {
                    "endpoints": [address, "127.0.0.1:1"],
                    "health_service": AUTH,
                }
            },
            "discovery": {"enabled": False},
        },
        environ={},
        interceptors=(),
        channel_options=FAST_RECONNECT,
    )
    async with mesh:
        report = await mesh.health_check()
        assert report["auth"]["status"] == "degraded"
        serving = {e["address"]: e["serving"] for e in report["auth"]["endpoints"]}
        assert serving == {address: True, "127.0.0.1:1": False}
        await health_servicer.set(AUTH, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert (await mesh.health_check())["auth"]["status"] == "unhealthy"
