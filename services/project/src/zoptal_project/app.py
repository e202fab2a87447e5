"""Builds the Project server: database, services, the usage outbox, peers, gRPC."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Unpack

import grpc
from meshcore.client_manager import GrpcClientManager
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.completion import Completions
from meshcore.db import Database
from meshcore.interceptors.chain import ChainOverrides, service_chain
from meshcore.observability.runtime_metrics import BacklogMonitor, table_backlog
from meshcore.server import MeshServer, ServiceRegistration
from zoptal.clients import AnalyticsServiceClient, AuthServiceClient, BillingServiceClient
from zoptal.clients.service_identity import PeerAccess
from zoptal.project.v1 import project_pb2_grpc

from zoptal_project.gateways import GrpcAnalyticsGateway, GrpcBillingGateway, GrpcUserDirectory
from zoptal_project.members import MembershipService
from zoptal_project.migrate import MIGRATIONS_DIR
from zoptal_project.models import UsageOutboxRow
from zoptal_project.service import ProjectService
from zoptal_project.servicer import ProjectServicer
from zoptal_project.settings import ProjectSettings
from zoptal_project.usage_outbox import UsageOutboxDispatcher

__all__ = ["MIGRATIONS_DIR", "SERVICE_NAME", "ProjectApp"]

SERVICE_NAME = "zoptal.project.v1.ProjectService"


class ProjectApp:
    """Everything the Project process owns. Constructing it opens no connection.

    Peers are reached through one ``GrpcClientManager`` (``<SVC>_ADDR``, ``MESH_MODE``) whose
    client interceptors send Project's service token and propagate deadline and trace context.
    """

    def __init__(
        self,
        settings: ProjectSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        clients: GrpcClientManager | None = None,
    ) -> None:
        self.settings = settings
        # No overflow: under load, connections beyond the pool were opened (TLS attempt,
        # authentication) and closed again call after call; calls now queue for one of ten
        # instead, more than PostgreSQL on a few cores answers at once (docs/benchmarks.md).
        self.database = Database(
            settings.database_url, application_name="zoptal-project", pool_size=10, max_overflow=0
        )
        # Project's own token for its peers, and the tokens revoked through Auth (polled from
        # ListRevocations, asked on every call).
        self.peers = PeerAccess(settings, clock=clock, clients=clients)
        self.clients = self.peers.clients
        self.revocations = self.peers.revocations
        billing = GrpcBillingGateway(
            BillingServiceClient(self.clients), timeout_ms=settings.billing_timeout_ms
        )
        self.outbox = UsageOutboxDispatcher(
            self.database,
            billing,
            clock=clock,
            poll_interval=settings.usage_outbox_poll_seconds,
            stale_after=settings.stale_create_seconds,
        )
        # Mutations finish whatever their clients do; drained on shutdown, before the database.
        self.completions = Completions()
        self.projects = ProjectService(
            self.database,
            billing,
            GrpcAnalyticsGateway(
                AnalyticsServiceClient(self.clients), timeout_ms=settings.analytics_timeout_ms
            ),
            clock=clock,
            completions=self.completions,
            on_usage_queued=self.outbox.wake,
            on_create_abandoned=self.outbox.abandon,
        )
        self.members = MembershipService(
            self.database,
            billing,
            GrpcUserDirectory(AuthServiceClient(self.clients)),
            clock=clock,
            completions=self.completions,
            on_usage_queued=self.outbox.wake,
        )
        self.registrations = [
            ServiceRegistration(
                ProjectServicer(self.projects, self.members),
                project_pb2_grpc.add_ProjectServiceServicer_to_server,
                SERVICE_NAME,
            )
        ]
        self._clock = clock
        self._outbox_task: asyncio.Task[None] | None = None
        self.backlog = BacklogMonitor(
            "project_usage_outbox", table_backlog(self.database, UsageOutboxRow.created_at)
        )
        self._backlog_task: asyncio.Task[None] | None = None

    def interceptors(self, **test: Unpack[ChainOverrides]) -> list[grpc.aio.ServerInterceptor]:
        """meshcore's production chain, refusing revoked tokens."""
        return service_chain(self.settings, self.revocations, clock=self._clock, **test)

    def start_background(self) -> None:
        """Start polling revocations, delivering the usage outbox, sweeping abandoned creates."""
        self.peers.start()
        if self._outbox_task is None:
            self._outbox_task = asyncio.get_running_loop().create_task(
                self.outbox.run(), name="project-usage-outbox"
            )
        if self._backlog_task is None:
            self._backlog_task = asyncio.get_running_loop().create_task(
                self.backlog.run(), name="project-usage-outbox-backlog"
            )

    async def close(self) -> None:
        """Stop background work, let analytics events finish, close peers and the database."""
        await self.peers.stop()
        for task in (self._outbox_task, self._backlog_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._outbox_task = self._backlog_task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.completions.drain()
        await self.clients.close()
        await self.projects.close()
        await self.database.dispose()

    def server(self) -> MeshServer:
        return MeshServer(
            self.settings,
            self.registrations,
            interceptors=self.interceptors(),
            dependency_checks={"database": self.database.ping},
            on_shutdown=[self.close],
            clock=self._clock,
        )

    async def serve(self) -> None:
        server = self.server()
        self.start_background()
        await server.serve()
