"""Builds the Project server: database, services, the usage outbox, peers, gRPC."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
from meshcore.client_manager import GrpcClientManager
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.interceptors.chain import build_server_chain
from meshcore.server import MeshServer, ServiceRegistration
from meshcore.service_token import ServiceTokenSigner
from zoptal.clients import AnalyticsServiceClient, AuthServiceClient, BillingServiceClient
from zoptal.clients.revocations import auth_revocation_feed
from zoptal.project.v1 import project_pb2_grpc

from zoptal_project.gateways import GrpcAnalyticsGateway, GrpcBillingGateway, GrpcUserDirectory
from zoptal_project.members import MembershipService
from zoptal_project.migrate import MIGRATIONS_DIR
from zoptal_project.peer_permissions import PROJECT_PERMISSIONS
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
        self.database = Database(settings.database_url, application_name="zoptal-project")
        self.clients = clients or GrpcClientManager.from_settings(
            settings,
            service_token=ServiceTokenSigner.for_service(
                settings, "Project Service", PROJECT_PERMISSIONS, clock=clock
            ),
            clock=clock,
        )
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
        self.projects = ProjectService(
            self.database,
            billing,
            GrpcAnalyticsGateway(
                AnalyticsServiceClient(self.clients), timeout_ms=settings.analytics_timeout_ms
            ),
            clock=clock,
            on_usage_queued=self.outbox.wake,
            on_create_abandoned=self.outbox.abandon,
        )
        self.members = MembershipService(
            self.database,
            billing,
            GrpcUserDirectory(AuthServiceClient(self.clients)),
            clock=clock,
            on_usage_queued=self.outbox.wake,
        )
        # Tokens revoked through Auth, polled from ListRevocations: asked on every call.
        self.revocations = auth_revocation_feed(self.clients, settings, clock=clock)
        self.registrations = [
            ServiceRegistration(
                ProjectServicer(self.projects, self.members),
                project_pb2_grpc.add_ProjectServiceServicer_to_server,
                SERVICE_NAME,
            )
        ]
        self._clock = clock
        self._outbox_task: asyncio.Task[None] | None = None

    def interceptors(self, **overrides: Any) -> list[grpc.aio.ServerInterceptor]:
        """meshcore's production chain; ``overrides`` go to ``build_server_chain`` (tests)."""
        overrides.setdefault("revocations", self.revocations)
        return build_server_chain(self.settings, clock=self._clock, **overrides)

    def start_background(self) -> None:
        """Start polling revocations, delivering the usage outbox, sweeping abandoned creates."""
        self.revocations.start()
        if self._outbox_task is None:
            self._outbox_task = asyncio.get_running_loop().create_task(
                self.outbox.run(), name="project-usage-outbox"
            )

    async def close(self) -> None:
        """Stop background work, let analytics events finish, close peers and the database."""
        await self.revocations.stop()
        if self._outbox_task is not None:
            self._outbox_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outbox_task
            self._outbox_task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.projects.drain_background()
        await self.clients.close()
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
