"""Health (Check and Watch) of a MeshServer, over a real channel."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshcore.errors import Unavailable
from meshcore.server import ServiceRegistration
from meshcore.settings import ServiceSettings
from meshcore.testing import FakeClock, serve_in_process

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
INTERVAL = 5.0
ECHO_SERVICE = "meshtest.Echo"


class Switch:
    """A dependency check whose outcome the test flips."""

    def __init__(self) -> None:
        self.healthy = True
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if not self.healthy:
            raise Unavailable("database unavailable")


async def check(channel: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(reply.status)


async def until_sleeping(clock: FakeClock) -> None:
    """Yield to the loop until the health poller waits on the fake clock (no real time passes)."""
    for _ in range(1000):
        if clock.pending_sleepers:
            return
        await asyncio.sleep(0)
    raise AssertionError("the health poller never went to sleep")


def settings() -> ServiceSettings:
    return ServiceSettings(health_check_interval_seconds=INTERVAL)


async def test_check_reports_serving_for_each_service_and_the_whole_server(
    echo_service: ServiceRegistration,
) -> None:
    """Every registered service name and "" answer SERVING once dependencies pass."""
    async with serve_in_process([echo_service]) as (_, channel):
        assert await check(channel) == SERVING
        assert await check(channel, ECHO_SERVICE) == SERVING


async def test_check_on_an_unknown_service_is_not_found(echo_service: ServiceRegistration) -> None:
    """Asking about a service this server does not have gives NOT_FOUND, as the spec says."""
    async with serve_in_process([echo_service]) as (_, channel):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await check(channel, "no.such.Service")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_failing_dependency_flips_watchers_to_not_serving_and_back(
    echo_service: ServiceRegistration,
) -> None:
    """While a dependency check fails every status is NOT_SERVING; it recovers when it passes."""
    clock = FakeClock()
    database = Switch()
    async with serve_in_process(
        [echo_service],
        settings=settings(),
        dependency_checks={"database": database},
        clock=clock,
        # No interceptors: this test cancels a Watch stream and then stops the server at once;
        # the logging interceptor (not under test here) calls context.peer() while such a
        # stream is torn down, which can crash grpc (segfault). Health needs no interceptors.
        interceptors=[],
    ) as (_, channel):
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=ECHO_SERVICE)
        )
        assert (await watch.read()).status == SERVING

        database.healthy = False
        await until_sleeping(clock)
        clock.advance(INTERVAL)
        assert (await watch.read()).status == NOT_SERVING
        assert await check(channel) == NOT_SERVING
        assert await check(channel, ECHO_SERVICE) == NOT_SERVING

        database.healthy = True
        await until_sleeping(clock)
        clock.advance(INTERVAL)
        assert (await watch.read()).status == SERVING
        assert await check(channel) == SERVING
        watch.cancel()


async def test_no_poll_happens_before_the_interval_passes(
    echo_service: ServiceRegistration,
) -> None:
    """Checks run on the injected clock's interval, not continuously."""
    clock = FakeClock()
    database = Switch()
    async with serve_in_process(
        [echo_service],
        settings=settings(),
        dependency_checks={"database": database},
        clock=clock,
    ):
        await until_sleeping(clock)
        assert database.calls == 1
        clock.advance(INTERVAL - 0.1)
        await asyncio.sleep(0)
        assert database.calls == 1
        clock.advance(0.1)
        for _ in range(100):
            if database.calls == 2:
                break
            await asyncio.sleep(0)
        assert database.calls == 2


async def test_a_dependency_down_at_start_means_not_serving_but_the_server_runs(
    echo_service: ServiceRegistration,
) -> None:
    """A server whose database is down still starts, answers health, and reports NOT_SERVING."""
    database = Switch()
    database.healthy = False
    async with serve_in_process(
        [echo_service], dependency_checks={"database": database}, clock=FakeClock()
    ) as running:
        assert await check(running.channel) == NOT_SERVING
        assert not running.server.monitor.report["database"].healthy
        assert "Unavailable" in running.server.monitor.report["database"].detail


async def test_a_check_returning_false_counts_as_failing(echo_service: ServiceRegistration) -> None:
    """``False`` from a check is a failure, like an exception."""

    async def says_no() -> bool:
        return False

    async with serve_in_process(
        [echo_service], dependency_checks={"redis": says_no}, clock=FakeClock()
    ) as (_, channel):
        assert await check(channel) == NOT_SERVING


async def test_liveness_ignores_dependencies_until_shutdown(
    echo_service: ServiceRegistration,
) -> None:
    """ "liveness" stays SERVING while the database is down (no restart loop), then stops."""
    database = Switch()
    database.healthy = False
    async with serve_in_process(
        [echo_service], dependency_checks={"database": database}, clock=FakeClock()
    ) as running:
        assert await check(running.channel) == NOT_SERVING
        assert await check(running.channel, "liveness") == SERVING
        await running.server.health.enter_graceful_shutdown()
        assert running.server.health.status("liveness") == NOT_SERVING
