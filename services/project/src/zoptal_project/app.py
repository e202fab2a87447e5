"""Builds the Project server: database, services, the usage outbox, peers, gRPC."""

from __future__ import annotations

from meshcore.client_manager import GrpcClientManager
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.completion import Completions
from meshcore.db import Database
from meshcore.observability.runtime_metrics import BacklogMonitor, table_backlog
from meshcore.server import ServiceRegistration, ShutdownHook
from meshcore.service_app import ServiceApp
from zoptal.clients import AnalyticsServiceClient, AuthServiceClient, BillingServiceClient
from zoptal.clients.service_identity import PeerAccess
from zoptal.project.v1 import project_pb2_grpc

from zoptal_project import MIGRATIONS_DIR
from zoptal_project.gateways import GrpcAnalyticsGateway, GrpcBillingGateway, GrpcUserDirectory
from zoptal_project.members import MembershipService
from zoptal_project.models import UsageOutboxRow
from zoptal_project.service import ProjectService
from zoptal_project.servicer import ProjectServicer
from zoptal_project.settings import ProjectSettings
from zoptal_project.usage_outbox import UsageOutboxDispatcher

__all__ = ["MIGRATIONS_DIR", "SERVICE_NAME", "ProjectApp"]

SERVICE_NAME = "zoptal.project.v1.ProjectService"


class ProjectApp(ServiceApp[ProjectSettings]):
    """Everything the Project process owns (``meshcore.service_app``).

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
        database = Database(settings.database_url, application_name="zoptal-project")
        # Project's own token for its peers, and the tokens revoked through Auth (polled from
        # ListRevocations, asked on every call).
        peers = PeerAccess(settings, clock=clock, clients=clients)
        super().__init__(settings, database, peers=peers, clock=clock)
        self.clients = peers.clients
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
        self.backlog = BacklogMonitor(
            "project_usage_outbox", table_backlog(self.database, UsageOutboxRow.created_at)
        )
        self.background_loops = {
            "project-usage-outbox": self.outbox.run,
            "project-usage-outbox-backlog": self.backlog.run,
        }

    def releases(self) -> list[ShutdownHook]:
        # Analytics events and mutations' peer calls finish first (at most 5 s).
        return [self.completions.finish, self.projects.close]
