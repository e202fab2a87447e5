"""One shape for every service process: what it owns, and the order it starts and stops in.

A service's ``app.py`` subclasses ``ServiceApp`` and declares only what differs: its servicers
(``registrations``), its peers, its background loops, extra health checks and what else it
releases on shutdown (``releases``). The rest happens the same way in every service:

* constructing the app opens no connection (the database is reached on first use);
* ``server()``: a ``MeshServer`` (health, reflection, metrics, graceful stop) with the
  interceptor chain from ``service_chain``, refusing the tokens the peers' revocation feed
  knows revoked;
* ``serve()``: ``prepare()`` (work before the first call), ``start_background()`` (the peers'
  token source and revocation feed, then every loop in ``background_loops``), serve until
  SIGTERM/SIGINT;
* ``close()``, the server's shutdown hook once calls have drained: stop the peers, cancel the
  loops, ``releases()`` in order, close the peer channels, dispose of the database. Each step
  runs like any shutdown hook (bounded, a failure logged), so one failing step leaves the
  database and the channels released all the same.

Test harnesses serve the same parts through ``meshcore.testing.serve_in_process``:
``registrations``, ``interceptors(**overrides)``, ``dependency_checks`` and ``[app.close]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar, Unpack

import grpc

from meshcore.client_manager import GrpcClientManager
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.health import DependencyCheck
from meshcore.interceptors.chain import ChainOverrides, service_chain
from meshcore.revocation import RevocationCheck
from meshcore.server import MeshServer, ServiceRegistration, ShutdownHook, run_shutdown_hook
from meshcore.settings import ServiceSettings
from meshcore.tasks import cancel_and_wait

__all__ = ["BackgroundLoop", "Peers", "ServiceApp"]

S = TypeVar("S", bound=ServiceSettings)

BackgroundLoop = Callable[[], Coroutine[Any, Any, None]]
"""A loop that runs until cancelled (an outbox dispatcher, a backlog monitor)."""


class Peers(Protocol):
    """How a service reaches its peers: ``zoptal.clients.service_identity.PeerAccess``."""

    @property
    def clients(self) -> GrpcClientManager: ...

    @property
    def revocations(self) -> RevocationCheck: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class ServiceApp(Generic[S]):
    """Everything one service process owns. Subclasses fill ``registrations`` (and, as they
    need, ``background_loops`` and ``dependency_checks``) in their ``__init__``."""

    def __init__(
        self,
        settings: S,
        database: Database,
        *,
        peers: Peers | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.database = database
        self.peers = peers
        self.clock = clock
        self.registrations: list[ServiceRegistration] = []
        self.background_loops: dict[str, BackgroundLoop] = {}
        """Task name -> loop, started by ``start_background`` and cancelled by ``close``."""
        self.dependency_checks: dict[str, DependencyCheck] = {"database": database.ping}
        self._tasks: list[asyncio.Task[None]] | None = None

    @property
    def running(self) -> bool:
        """True between ``start_background()`` and ``close()``."""
        return self._tasks is not None

    def interceptors(self, **test: Unpack[ChainOverrides]) -> list[grpc.aio.ServerInterceptor]:
        """meshcore's production chain, refusing the tokens revoked through Auth."""
        revocations = self.peers.revocations if self.peers is not None else None
        return service_chain(self.settings, revocations, clock=self.clock, **test)

    def releases(self) -> Sequence[ShutdownHook]:
        """What the service closes on shutdown besides its peers and database, in order."""
        return ()

    async def prepare(self) -> None:
        """Work to do before the first call is served (``serve`` only)."""

    def start_background(self) -> None:
        """Start the peers and the background loops (from the running loop; idempotent)."""
        if self._tasks is not None:
            return
        if self.peers is not None:
            self.peers.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(run(), name=name) for name, run in self.background_loops.items()
        ]

    async def close(self) -> None:
        """Stop the background work, then release everything (a shutdown hook)."""
        steps: list[ShutdownHook] = []
        if self.peers is not None:
            steps.append(self.peers.stop)
        steps += [self._cancel_tasks, *self.releases()]
        if self.peers is not None:
            steps.append(self.peers.clients.close)
        steps.append(self.database.dispose)
        for step in steps:
            await run_shutdown_hook(step)

    async def _cancel_tasks(self) -> None:
        tasks, self._tasks = self._tasks or [], None
        await cancel_and_wait(*tasks)

    def server(self) -> MeshServer:
        return MeshServer(
            self.settings,
            self.registrations,
            interceptors=self.interceptors(),
            dependency_checks=self.dependency_checks,
            on_shutdown=[self.close],
            clock=self.clock,
        )

    async def serve(self) -> None:
        """Serve until SIGTERM/SIGINT, then shut down gracefully."""
        server = self.server()
        await self.prepare()
        self.start_background()
        await server.serve()
