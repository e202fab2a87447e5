"""MeshServer start-up, metrics endpoint, graceful shutdown and the in-process test helper."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshcore.errors import NotFound
from meshcore.server import (
    DEFAULT_SERVER_OPTIONS,
    BindError,
    MeshServer,
    ServiceRegistration,
    run_shutdown_hook,
)
from meshcore.settings import ServiceSettings
from meshcore.testing import FakeClock
from prometheus_client import CollectorRegistry, Counter

from tests.support import free_port

ECHO = "/meshtest.Echo/Echo"
HOLD = "/meshtest.Echo/Hold"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def make_settings(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {"grpc_port": 0, "shutdown_grace_seconds": 5.0}
    values.update(overrides)
    return ServiceSettings(**values)  # type: ignore[arg-type]


async def http_get(port: int, path: str) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return head.decode().split("\r\n")[0], body


async def test_port_zero_binds_a_free_port_and_reports_it(
    echo_service: ServiceRegistration,
) -> None:
    """With GRPC_PORT=0 the server picks a port and tells which one."""
    server = MeshServer(make_settings(), [echo_service])
    await server.start()
    try:
        assert server.port is not None
        assert server.port > 0
        assert server.address == f"127.0.0.1:{server.port}"
        async with grpc.aio.insecure_channel(server.address) as channel:
            assert await channel.unary_unary(ECHO)(b"ping", timeout=5) == b"ping"
    finally:
        await server.stop()


async def test_a_taken_port_fails_to_bind_instead_of_sharing_it(
    echo_service: ServiceRegistration,
) -> None:
    """A second server on a busy port fails loudly (no silent SO_REUSEPORT sharing)."""
    first = MeshServer(make_settings(), [echo_service])
    await first.start()
    try:
        second = MeshServer(make_settings(grpc_port=first.port), [echo_service])
        with pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
            await second.start()
    finally:
        await first.stop()


async def test_metrics_are_served_on_their_own_port(echo_service: ServiceRegistration) -> None:
    """Prometheus text for the given registry is on METRICS_PORT at /metrics, 404 elsewhere."""
    registry = CollectorRegistry()
    Counter("meshtest_calls", "calls seen", registry=registry).inc(3)
    server = MeshServer(
        make_settings(metrics_port=free_port()), [echo_service], metrics_registry=registry
    )
    await server.start()
    try:
        assert server.metrics_port is not None
        status, body = await http_get(server.metrics_port, "/metrics")
        assert status == "HTTP/1.1 200 OK"
        assert b"meshtest_calls_total 3.0" in body
        status, _ = await http_get(server.metrics_port, "/other")
        assert status == "HTTP/1.1 404 Not Found"
    finally:
        await server.stop()


async def test_metrics_port_zero_disables_the_endpoint(echo_service: ServiceRegistration) -> None:
    """METRICS_PORT=0 opens no HTTP port."""
    server = MeshServer(make_settings(metrics_port=0), [echo_service])
    await server.start()
    try:
        assert server.metrics_port is None
    finally:
        await server.stop()


async def test_stop_turns_health_not_serving_and_lets_in_flight_calls_finish(
    echo: object, echo_service: ServiceRegistration
) -> None:
    """Shutdown: NOT_SERVING first, the running call completes OK, then the hooks run."""
    events: list[str] = []
    server = MeshServer(
        make_settings(),
        [echo_service],
        on_shutdown=[lambda: events.append("first hook"), lambda: events.append("last hook")],
    )
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await watch.read()).status == SERVING
    in_flight = asyncio.ensure_future(channel.unary_unary(HOLD)(b"", timeout=10))
    await echo.started.wait()  # type: ignore[attr-defined]

    stopping = asyncio.ensure_future(server.stop())
    assert (await watch.read()).status == NOT_SERVING
    assert not in_flight.done()
    assert events == []

    echo.release.set()  # type: ignore[attr-defined]
    assert await in_flight == b"released"
    await stopping
    assert events == ["last hook", "first hook"]
    await channel.close()


async def test_the_drain_delay_keeps_answering_until_the_clock_passes_it(
    echo_service: ServiceRegistration,
) -> None:
    """During the drain, health says NOT_SERVING but calls still succeed; after it, refused."""
    clock = FakeClock()
    server = MeshServer(make_settings(shutdown_drain_seconds=5.0), [echo_service], clock=clock)
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stopping = asyncio.ensure_future(server.stop())
        for _ in range(1000):
            if clock.pending_sleepers and server.health.status("") == NOT_SERVING:
                break
            await asyncio.sleep(0)
        assert server.health.status("") == NOT_SERVING
        assert await channel.unary_unary(ECHO)(b"still here", timeout=5) == b"still here"
        clock.advance(5.0)
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(ECHO)(b"too late", timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_failing_shutdown_hook_does_not_skip_the_others(
    echo_service: ServiceRegistration,
) -> None:
    """Every hook runs even when one raises: the database still closes if Redis fails to."""
    closed: list[str] = []

    async def close_database() -> None:
        closed.append("database")

    async def close_redis() -> None:
        raise ConnectionError("redis already gone")

    server = MeshServer(make_settings(), [echo_service], on_shutdown=[close_database])
    server.on_shutdown(close_redis)
    await server.start()
    await server.stop()
    assert closed == ["database"]


async def test_a_hook_that_ignores_its_time_limit_is_left_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook that swallows its cancellation (``suppress(CancelledError)`` around an await)
    cannot hold the shutdown up: past its limit the next step runs and the hook is named."""
    release = asyncio.Event()

    async def stubborn_close() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    await run_shutdown_hook(stubborn_close, limit=0.05)
    assert "stubborn_close did not finish" in caplog.text
    release.set()


async def test_serve_returns_once_a_stop_is_requested(echo_service: ServiceRegistration) -> None:
    """``serve()`` runs until ``request_stop`` (what SIGTERM does), then completes."""
    server = MeshServer(make_settings(), [echo_service])
    serving = asyncio.ensure_future(server.serve(handle_signals=False, freeze_heap=False))
    for _ in range(1000):
        if server.port is not None and server.health.status("") == SERVING:
            break
        await asyncio.sleep(0.01)
    server.request_stop()
    await asyncio.wait_for(serving, timeout=10)
    assert server.health.status("") == NOT_SERVING


async def test_serve_freezes_the_objects_made_at_start_up(
    echo_service: ServiceRegistration,
) -> None:
    """Once serving, what start-up made is frozen out of the collector's scans (gc.freeze);
    this test gives the test runner's objects back to the collector afterwards."""
    import gc

    server = MeshServer(make_settings(), [echo_service])
    gc.unfreeze()
    serving = asyncio.ensure_future(server.serve(handle_signals=False))
    try:
        for _ in range(1000):
            if gc.get_freeze_count() > 0:
                break
            await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 0
        assert server.health.status("") == SERVING
    finally:
        server.request_stop()
        await asyncio.wait_for(serving, timeout=10)
        gc.unfreeze()


async def test_domain_errors_are_mapped_by_the_default_interceptor() -> None:
    """With no interceptors given, a raised NotFound reaches the client as NOT_FOUND."""

    async def lookup(request: bytes, context: object) -> bytes:
        raise NotFound("widget", request.decode())

    def add(servicer: object, server: grpc.aio.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "meshtest.Widgets", {"Get": grpc.unary_unary_rpc_method_handler(lookup)}
        )
        server.add_generic_rpc_handlers((handler,))

    server = MeshServer(make_settings(), [ServiceRegistration(None, add, "meshtest.Widgets")])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary("/meshtest.Widgets/Get")(b"w-1", timeout=5)
    finally:
        await server.stop()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "w-1" in (caught.value.details() or "")


async def test_a_taken_metrics_port_fails_the_start_and_releases_the_grpc_port(
    echo_service: ServiceRegistration,
) -> None:
    """A busy METRICS_PORT is a start-up error naming the port; nothing stays bound."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = MeshServer(make_settings(metrics_port=port), [echo_service])
        with pytest.raises(BindError, match=f"cannot bind metrics 127.0.0.1:{port}"):
            await server.start()


def test_options_override_the_defaults_by_name_and_keep_the_rest() -> None:
    """Only what differs is passed; each option appears once, with the override's value."""
    server = MeshServer(make_settings(), [], options=[("grpc.max_receive_message_length", 123)])
    names = [name for name, _ in server.options]
    assert len(names) == len(set(names))
    assert dict(server.options) == {
        **dict(DEFAULT_SERVER_OPTIONS),
        "grpc.max_receive_message_length": 123,
    }
    assert MeshServer(make_settings(), []).options == list(DEFAULT_SERVER_OPTIONS)


async def test_size_limits_take_effect_on_the_wire(echo_service: ServiceRegistration) -> None:
    """A request over the receive limit (4 MiB unless GRPC_MAX_RECEIVE_MESSAGE_BYTES or an
    option raises it) and a reply over 4 MiB (the policy: every stack reads 4 MiB by default)
    are RESOURCE_EXHAUSTED; overrides apply by name (grpc keeps the first value it is given)."""
    request = b"x" * (5 * 1024 * 1024)
    unlimited_client = [
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
    ]
    eight_mib = 8 * 1024 * 1024
    cases: list[tuple[ServiceSettings, list[tuple[str, int]]]] = [
        (make_settings(), []),
        (make_settings(grpc_max_receive_message_bytes=eight_mib), []),
        (
            make_settings(grpc_max_receive_message_bytes=eight_mib),
            [("grpc.max_send_message_length", eight_mib)],
        ),
        (
            make_settings(),
            [
                ("grpc.max_receive_message_length", eight_mib),
                ("grpc.max_send_message_length", eight_mib),
            ],
        ),
    ]
    answers = []
    for settings, options in cases:
        server = MeshServer(settings, [echo_service], options=options)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address, options=unlimited_client) as ch:
                call = ch.unary_unary(ECHO)(request, timeout=10)
                answers.append((await call.code(), str(await call.details()).split(" (")[0]))
        finally:
            await server.stop()
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
    assert answers == [
        (exhausted, "SERVER: Received message larger than max"),
        (exhausted, "SERVER: Sent message larger than max"),
        (grpc.StatusCode.OK, ""),
        (grpc.StatusCode.OK, ""),
    ]
