"""``ServiceApp``: the one lifecycle every service process shares, and ``ServiceCli`` serving it."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path

import grpc
import pytest
from meshcore.cli import ServiceCli
from meshcore.client_manager import GrpcClientManager
from meshcore.db import Database
from meshcore.revocation import RevocationFeed, RevocationPage
from meshcore.server import ShutdownHook
from meshcore.service_app import ServiceApp
from meshcore.settings import ServiceSettings

from tests.unit.meshcore.server.conftest import ECHO_SERVICE, echo_registration

ECHO = f"/{ECHO_SERVICE}/Echo"


class RecordingClients(GrpcClientManager):
    def __init__(self, events: list[str]) -> None:
        super().__init__({})
        self.events = events

    async def close(self, grace: float | None = None) -> None:
        self.events.append("clients closed")
        await super().close(grace)


class RecordingDatabase(Database):
    def __init__(self, url: str, events: list[str]) -> None:
        super().__init__(url)
        self.events = events

    async def dispose(self) -> None:
        self.events.append("database disposed")
        await super().dispose()


class RecordingPeers:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.clients = RecordingClients(events)

        async def fetch(cursor: str) -> RevocationPage:
            raise AssertionError("the feed is never started in these tests")

        self.revocations = RevocationFeed(fetch)

    def start(self) -> None:
        self.events.append("peers started")

    async def stop(self) -> None:
        self.events.append("peers stopped")


class ExampleApp(ServiceApp[ServiceSettings]):
    """A service with one loop and two things to release, the first of which fails."""

    def __init__(self, settings: ServiceSettings, database: Database, events: list[str]) -> None:
        super().__init__(settings, database, peers=RecordingPeers(events))
        self.events = events
        self.loop_running = asyncio.Event()
        self.background_loops = {"example-loop": self._loop}

    async def _loop(self) -> None:
        self.events.append("loop started")
        self.loop_running.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.events.append("loop cancelled")

    def releases(self) -> list[ShutdownHook]:
        return [self._failing_release, lambda: self.events.append("second release")]

    async def _failing_release(self) -> None:
        self.events.append("first release")
        raise RuntimeError("the broker is gone")


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def app(tmp_path: Path, events: list[str]) -> ExampleApp:
    database = RecordingDatabase(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", events)
    return ExampleApp(ServiceSettings(grpc_port=0), database, events)


async def test_start_then_close_runs_every_step_in_order_despite_a_failing_release(
    app: ExampleApp, events: list[str]
) -> None:
    app.start_background()
    app.start_background()  # idempotent: one set of loops
    await asyncio.wait_for(app.loop_running.wait(), 5)
    assert app.running

    await app.close()

    assert events == [
        "peers started",
        "loop started",
        "peers stopped",
        "loop cancelled",
        "first release",
        "second release",  # the failure above is logged, the rest still runs
        "clients closed",
        "database disposed",
    ]
    assert not app.running


async def test_the_server_checks_the_database_and_refuses_calls_without_a_token(
    app: ExampleApp,
) -> None:
    app.registrations = [echo_registration()]
    server = app.server()
    assert set(server.monitor.checks) == {"database"}
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(ECHO)(b"ping", timeout=5)
        # service_chain's auth layer is in front of every servicer.
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop()


def _cli(factory: str) -> ServiceCli[ServiceSettings]:
    return ServiceCli("example", None, ServiceSettings, Path("migrations"), factory)


async def test_the_cli_serves_what_an_async_factory_builds(
    app: ExampleApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[ServiceApp[ServiceSettings]] = []

    async def serve() -> None:
        served.append(app)

    async def build(settings: ServiceSettings) -> ExampleApp:
        return app

    monkeypatch.setattr(app, "serve", serve)
    monkeypatch.setitem(sys.modules, "example_app", types.SimpleNamespace(build=build))
    await _cli("example_app:build")._serve_app(ServiceSettings())
    assert served == [app]


async def test_the_cli_refuses_a_factory_that_makes_no_service_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "example_app", types.SimpleNamespace(build=lambda s: 42))
    with pytest.raises(TypeError, match="example_app:build made int, not a ServiceApp"):
        await _cli("example_app:build")._serve_app(ServiceSettings())
