"""The services Project talks to, each a real gRPC server in this process.

Auth (real: users, ES256 tokens, JWKS over HTTP), Billing (real, on PostgreSQL), Notification
(real: it stores and queues emails; no Celery worker is needed to see what was queued) and an
in-process AnalyticsService that records what it is sent, standing in until Analytics has a
server. Every server runs meshcore's production interceptor chain except the analytics stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from meshcore.migrations import upgrade_database
from meshcore.server import ServiceRegistration
from meshcore.testing import InProcessServer, serve_in_process
from prometheus_client import CollectorRegistry
from zoptal.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.billing.v1 import billing_pb2_grpc
from zoptal.notification.v1 import notification_pb2_grpc
from zoptal.project.v1 import project_pb2_grpc
from zoptal_auth.app import MIGRATIONS_DIR as AUTH_MIGRATIONS, AuthApp, build_app as build_auth
from zoptal_auth.service_identity import credentials_path
from zoptal_auth.settings import AuthSettings
from zoptal_billing import MIGRATIONS_DIR as BILLING_MIGRATIONS
from zoptal_billing.app import BillingApp
from zoptal_billing.settings import BillingSettings
from zoptal_notification.app import MIGRATIONS_DIR as NOTIFICATION_MIGRATIONS, NotificationApp
from zoptal_notification.settings import NotificationSettings
from zoptal_project import MIGRATIONS_DIR as PROJECT_MIGRATIONS
from zoptal_project.app import ProjectApp
from zoptal_project.settings import ProjectSettings

from tests.identities import provision

__all__ = ["PASSWORD", "Mesh", "RecordingAnalytics", "running_mesh"]

PASSWORD = "violet tractor harbour"
CHEAP_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
}
COMMON: dict[str, Any] = {"metrics_port": 0, "rate_limit_max_requests": 100_000}


@dataclass
class RecordingAnalytics(analytics_pb2_grpc.AnalyticsServiceServicer):
    """Stands in for AnalyticsService: records TrackEvent calls and the token they carried."""

    events: list[analytics_pb2.TrackEventRequest] = field(default_factory=list)
    service_tokens: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    broken: bool = False

    async def TrackEvent(
        self, request: analytics_pb2.TrackEventRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> analytics_pb2.TrackEventResponse:
        if self.broken:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "analytics is down")
        metadata = dict(context.invocation_metadata() or ())
        self.service_tokens.append(str(metadata.get("x-service-token", "")))
        self.events.append(request)
        self.arrived.set()
        return analytics_pb2.TrackEventResponse(event_id=request.event_id)


@dataclass
class Mesh:
    project: Any  # project_pb2_grpc.ProjectServiceStub
    billing: Any  # billing_pb2_grpc.BillingServiceStub
    notification: Any  # notification_pb2_grpc.NotificationServiceStub
    auth: Any  # auth_pb2_grpc.AuthServiceStub
    analytics: RecordingAnalytics
    project_app: ProjectApp
    billing_app: BillingApp
    billing_server: InProcessServer
    auth_app: AuthApp

    async def user(self, email: str) -> tuple[str, Sequence[tuple[str, str]]]:
        """Register and log in; the user's id and their bearer metadata."""
        registered = await self.auth.RegisterUser(
            auth_pb2.RegisterUserRequest(email=email, password=PASSWORD)
        )
        return registered.user.id, await self._login(email)

    async def admin(self, email: str) -> tuple[str, Sequence[tuple[str, str]]]:
        """An admin, made as the operator's bootstrap does; their id and bearer metadata."""
        record = await self.auth_app.auth.ensure_admin(email, PASSWORD)
        return record.id, await self._login(email)

    async def service(
        self, admin: Sequence[tuple[str, str]], name: str, *permissions: str
    ) -> tuple[str, Sequence[tuple[str, str]]]:
        """A service account ``admin`` creates with ``permissions``; its id and token metadata."""
        created = await self.auth.CreateServiceAccount(
            auth_pb2.CreateServiceAccountRequest(name=name, permissions=list(permissions)),
            metadata=admin,
        )
        issued = await self.auth.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(
                client_id=created.service_account.client_id, client_secret=created.client_secret
            )
        )
        return issued.service_id, (("x-service-token", issued.access_token),)

    async def _login(self, email: str) -> Sequence[tuple[str, str]]:
        login = await self.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
        return (("authorization", f"Bearer {login.access_token}"),)


@contextlib.asynccontextmanager
async def running_mesh(
    tmp: Path, project_url: str, billing_url: str, **project_overrides: Any
) -> AsyncIterator[Mesh]:
    async with contextlib.AsyncExitStack() as stack:
        auth_settings = AuthSettings(
            data_dir=tmp,
            database_url=f"sqlite+aiosqlite:///{tmp / 'auth.db'}",
            auth_http_port=0,
            **CHEAP_ARGON2,
            **COMMON,
        )
        await upgrade_database(auth_settings.database_url, AUTH_MIGRATIONS)
        # Each service's own credential, provisioned as `service-identity ensure` does.
        identities = tmp / "identities"
        await provision(auth_settings, identities, "project", "billing", "notification")
        auth_app = await build_auth(auth_settings)
        jwks_port = await auth_app.jwks_http.start()
        auth_server = await stack.enter_async_context(
            serve_in_process(
                auth_app.registrations,
                settings=auth_settings,
                interceptors=auth_app.interceptors(),
                on_shutdown=[auth_app.close],
            )
        )
        jwks_url = f"http://127.0.0.1:{jwks_port}/.well-known/jwks.json"

        notification_settings = NotificationSettings(
            data_dir=tmp,
            database_url=f"sqlite+aiosqlite:///{tmp / 'notification.db'}",
            celery_broker_url=f"sqla+sqlite:///{tmp / 'broker.db'}",
            auth_jwks_url=jwks_url,
            service_credentials_file=credentials_path(identities, "notification"),
            peers={"auth": (auth_server.address,)},
            **COMMON,
        )
        await upgrade_database(notification_settings.database_url, NOTIFICATION_MIGRATIONS)
        notification_app = NotificationApp(notification_settings)
        notification_server = await stack.enter_async_context(
            serve_in_process(
                notification_app.registrations,
                settings=notification_settings,
                interceptors=_chain(notification_settings),
                on_shutdown=[notification_app.close],
            )
        )
        notification_app.start_background()

        billing_settings = BillingSettings(
            database_url=billing_url,
            auth_jwks_url=jwks_url,
            service_credentials_file=credentials_path(identities, "billing"),
            notice_poll_seconds=0.2,
            peers={
                "auth": (auth_server.address,),
                "notification": (notification_server.address,),
            },
            **COMMON,
        )
        await upgrade_database(billing_url, BILLING_MIGRATIONS)
        billing_app = BillingApp(billing_settings)
        billing_server = await stack.enter_async_context(
            serve_in_process(
                billing_app.registrations,
                settings=billing_settings,
                interceptors=billing_app.interceptors(metrics_registry=CollectorRegistry()),
                on_shutdown=[billing_app.close],
            )
        )
        billing_app.start_background()

        analytics = RecordingAnalytics()
        analytics_server = await stack.enter_async_context(
            serve_in_process(
                [
                    ServiceRegistration(
                        analytics,
                        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
                        "zoptal.analytics.v1.AnalyticsService",
                    )
                ],
                interceptors=[],
            )
        )

        project_settings = ProjectSettings(
            database_url=project_url,
            auth_jwks_url=jwks_url,
            service_credentials_file=credentials_path(identities, "project"),
            billing_timeout_ms=1_500.0,
            usage_outbox_poll_seconds=0.2,
            peers={
                "auth": (auth_server.address,),
                "billing": (billing_server.address,),
                "analytics": (analytics_server.address,),
            },
            **{**COMMON, **project_overrides},
        )
        await upgrade_database(project_url, PROJECT_MIGRATIONS)
        project_app = ProjectApp(project_settings)
        project_server = await stack.enter_async_context(
            serve_in_process(
                project_app.registrations,
                settings=project_settings,
                interceptors=project_app.interceptors(metrics_registry=CollectorRegistry()),
                on_shutdown=[project_app.close],
            )
        )
        project_app.start_background()

        yield Mesh(
            project=project_pb2_grpc.ProjectServiceStub(project_server.channel),
            billing=billing_pb2_grpc.BillingServiceStub(billing_server.channel),
            notification=notification_pb2_grpc.NotificationServiceStub(notification_server.channel),
            auth=auth_pb2_grpc.AuthServiceStub(auth_server.channel),
            analytics=analytics,
            project_app=project_app,
            billing_app=billing_app,
            billing_server=billing_server,
            auth_app=auth_app,
        )


def _chain(settings: Any) -> list[grpc.aio.ServerInterceptor]:
    from meshcore.interceptors.chain import build_server_chain

    return build_server_chain(settings, metrics_registry=CollectorRegistry())
