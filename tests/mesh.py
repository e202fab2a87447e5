"""The whole mesh in one process: Auth, Notification, Billing, Analytics and Project, each a real
gRPC server behind its production interceptor chain, talking to the others over loopback.

``serve_mesh`` migrates each service's database with Alembic, provisions every platform service's
own credential as ``service-identity ensure`` does, and serves the services in dependency order
with ``meshcore.testing.serve_in_process`` on the running event loop. Databases are SQLite files
in the data folder unless ``database_urls`` names another for a service (PostgreSQL, as deployed).
Analytics can be replaced by a stand-in servicer (``RecordingAnalytics``) for tests that look at
exactly what Project sends it or make it fail. Synchronous tests (hypothesis) run the mesh on a
``BackgroundLoop`` and call it through blocking channels.

Used by the fuzz suite (tests/fuzz/conftest.py), the error-reason tests
(tests/integration/errors/) and Project's integration tests (tests/integration/project/). The
pieces it serves each service with, ``serving(app)``, ``serving_auth(app)`` and
``auth_settings()``, also serve the single services of the Analytics, Notification, Billing and
Auth integration tests. How the mesh builds each service's settings and app is in the
``_serve_*`` functions at the end, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from meshcore.jwt import SigningKey
from meshcore.migrations import upgrade_database
from meshcore.server import ServiceRegistration
from meshcore.service_app import ServiceApp
from meshcore.settings import Secret
from meshcore.testing import InProcessServer, serve_in_process
from prometheus_client import CollectorRegistry
from zoptal.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.billing.v1 import billing_pb2_grpc
from zoptal.notification.v1 import notification_pb2_grpc
from zoptal.project.v1 import project_pb2_grpc
from zoptal_analytics.app import MIGRATIONS_DIR as ANALYTICS_MIGRATIONS, AnalyticsApp
from zoptal_analytics.settings import AnalyticsSettings
from zoptal_auth.app import MIGRATIONS_DIR as AUTH_MIGRATIONS, AuthApp, build_app as build_auth
from zoptal_auth.platform_services import PLATFORM_SERVICES
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
from tests.support import CHEAP_ARGON2

__all__ = [
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "PASSWORD",
    "BackgroundLoop",
    "InProcessMesh",
    "RecordingAnalytics",
    "auth_settings",
    "serve_mesh",
    "serving",
    "serving_auth",
]

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = secrets.token_urlsafe(24)
"""Made for this run: Auth bootstraps the admin with it (AUTH_BOOTSTRAP_ADMIN_PASSWORD)."""
PASSWORD = "violet tractor harbour"
# Tests send thousands of calls from one peer: the limiter is not what is under test here.
COMMON: dict[str, Any] = {"metrics_port": 0, "rate_limit_max_requests": 10_000_000}
POLL_SECONDS = 0.2
"""Billing's notice and Project's usage outboxes poll this often, so tests see effects soon."""


@dataclass
class RecordingAnalytics(analytics_pb2_grpc.AnalyticsServiceServicer):
    """Stands in for Analytics: records each TrackEvent and the service token it carried, and
    answers UNAVAILABLE while ``broken``. Served without interceptors."""

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


@dataclass(frozen=True, repr=False)
class InProcessMesh:
    """The running services: servers by short name, the apps tests reach into, and Auth's keys.

    ``signing_key`` is Auth's real key, so token attacks can change one claim of an otherwise
    valid token. ``auth_environment`` is what Auth's command line needs to act on this mesh
    (``DATA_DIR``, ``DATABASE_URL``, the cheap Argon2 cost), as the launcher sets it.
    """

    servers: dict[str, InProcessServer]
    auth_app: AuthApp
    billing_app: BillingApp
    project_app: ProjectApp
    jwks_url: str
    signing_key: SigningKey
    identities_dir: Path
    auth_environment: dict[str, str]

    @property
    def addresses(self) -> dict[str, str]:
        """``host:port`` by service."""
        return {name: server.address for name, server in self.servers.items()}

    # Async stubs on the servers' own channels: for tests running on the mesh's event loop.
    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceAsyncStub:
        return auth_pb2_grpc.AuthServiceStub(self.servers["auth"].channel)

    @property
    def project(self) -> project_pb2_grpc.ProjectServiceAsyncStub:
        return project_pb2_grpc.ProjectServiceStub(self.servers["project"].channel)

    @property
    def billing(self) -> billing_pb2_grpc.BillingServiceAsyncStub:
        return billing_pb2_grpc.BillingServiceStub(self.servers["billing"].channel)

    @property
    def notification(self) -> notification_pb2_grpc.NotificationServiceAsyncStub:
        return notification_pb2_grpc.NotificationServiceStub(self.servers["notification"].channel)

    async def user(self, email: str) -> tuple[str, Metadata]:
        """Register and log in; the user's id and their bearer metadata."""
        registered = await self.auth.RegisterUser(
            auth_pb2.RegisterUserRequest(email=email, password=PASSWORD)
        )
        return registered.user.id, await self._login(email)

    async def admin(self, email: str) -> tuple[str, Metadata]:
        """An admin, made as the operator's bootstrap does; their id and bearer metadata."""
        record = await self.auth_app.auth.ensure_admin(email, PASSWORD)
        return record.id, await self._login(email)

    async def service(self, admin: Metadata, name: str, *permissions: str) -> tuple[str, Metadata]:
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

    async def _login(self, email: str) -> Metadata:
        login = await self.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
        return (("authorization", f"Bearer {login.access_token}"),)


class BackgroundLoop:
    """An event loop running in a daemon thread; ``run`` executes a coroutine on it.

    Lets synchronous tests (hypothesis) share one mesh without event-loop scope games.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.asynccontextmanager
async def serve_mesh(
    data_dir: Path,
    database_urls: Mapping[str, str] | None = None,
    *,
    analytics: analytics_pb2_grpc.AnalyticsServiceServicer | None = None,
    project_settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[InProcessMesh]:
    """Migrate and serve the five services (Analytics: ``analytics`` instead, if given).

    ``database_urls`` by service; SQLite files in ``data_dir`` for the services it omits.
    ``project_settings`` override Project's settings.
    """
    urls = dict(database_urls or {})

    def database(service: str) -> str:
        return urls.get(service) or f"sqlite+aiosqlite:///{data_dir / f'{service}.db'}"

    identities = data_dir / "identities"
    async with contextlib.AsyncExitStack() as stack:
        auth_config, auth_app, auth = await _serve_auth(stack, data_dir, database("auth"))
        jwks_url = f"http://127.0.0.1:{await auth_app.jwks_http.start()}/.well-known/jwks.json"
        servers = {"auth": auth}

        def joining(service: str, *peers: str) -> dict[str, Any]:
            """Settings every other service gets: its identity, Auth's keys, its peers."""
            return {
                "data_dir": data_dir,
                "auth_jwks_url": jwks_url,
                "service_credentials_file": credentials_path(identities, service),
                "peers": {peer: (servers[peer].address,) for peer in peers},
                **COMMON,
            }

        servers["notification"] = await _serve_notification(
            stack, database("notification"), **joining("notification", "auth")
        )
        billing_app, servers["billing"] = await _serve_billing(
            stack, database("billing"), **joining("billing", "auth", "notification")
        )
        if analytics is None:
            servers["analytics"] = await _serve_analytics(
                stack, database("analytics"), **joining("analytics", "auth")
            )
        else:
            servers["analytics"] = await _serve_stand_in(stack, analytics)
        project_app, servers["project"] = await _serve_project(
            stack,
            database("project"),
            **joining("project", "auth", "billing", "analytics"),
            **(project_settings or {}),
        )
        yield InProcessMesh(
            servers=servers,
            auth_app=auth_app,
            billing_app=billing_app,
            project_app=project_app,
            jwks_url=jwks_url,
            signing_key=auth_app.keys.current,
            identities_dir=identities,
            auth_environment={
                "DATA_DIR": str(data_dir),
                "DATABASE_URL": auth_config.database_url,
                **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()},
            },
        )


# -- each service's construction: the one place that knows the services' builders -------------


def auth_settings(data_dir: Path, database_url: str, **overrides: Any) -> AuthSettings:
    """Auth's settings for a test: bootstrap admin ``ADMIN_EMAIL``, cheap hashing, free ports."""
    return AuthSettings(
        **{
            "data_dir": data_dir,
            "database_url": database_url,
            "auth_http_port": 0,
            "metrics_port": 0,
            "auth_bootstrap_admin_email": ADMIN_EMAIL,
            "auth_bootstrap_admin_password": Secret(ADMIN_PASSWORD),
            **CHEAP_ARGON2,
            **overrides,
        }
    )


@contextlib.asynccontextmanager
async def serving_auth(
    app: AuthApp, interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None
) -> AsyncIterator[InProcessServer]:
    """``serving`` for Auth, whose bootstrap admin (``ADMIN_EMAIL``) is made first, as its
    start-up does. Its JWKS endpoint is the caller's to start (``app.jwks_http.start()``)."""
    await app.auth.ensure_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    async with serving(app, interceptors) as server:
        yield server


async def _serve_auth(
    stack: contextlib.AsyncExitStack, data_dir: Path, database_url: str
) -> tuple[AuthSettings, AuthApp, InProcessServer]:
    settings = auth_settings(data_dir, database_url, **COMMON)
    await upgrade_database(database_url, AUTH_MIGRATIONS)
    await provision(settings, data_dir / "identities", *PLATFORM_SERVICES)
    app = await build_auth(settings)
    return settings, app, await stack.enter_async_context(serving_auth(app))


@contextlib.asynccontextmanager
async def serving(
    app: ServiceApp[Any], interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None
) -> AsyncIterator[InProcessServer]:
    """A service's ``app`` on a loopback port with its background work on, behind
    ``interceptors`` (its production chain when omitted), with its health checks; shut down
    gracefully when the block ends. Its database must be migrated already."""
    if interceptors is None:
        interceptors = app.interceptors(metrics_registry=CollectorRegistry())
    async with serve_in_process(
        app.registrations,
        settings=app.settings,
        interceptors=interceptors,
        dependency_checks=app.dependency_checks,
        on_shutdown=[app.close],
    ) as server:
        app.start_background()
        yield server


async def _serve_notification(
    stack: contextlib.AsyncExitStack, database_url: str, **settings: Any
) -> InProcessServer:
    data_dir: Path = settings["data_dir"]
    notification_settings = NotificationSettings(
        database_url=database_url,
        # Sent emails are stored and queued; no Celery worker is needed to see what was queued.
        celery_broker_url=f"sqla+sqlite:///{data_dir / 'broker.db'}",
        **settings,
    )
    await upgrade_database(database_url, NOTIFICATION_MIGRATIONS)
    return await stack.enter_async_context(serving(NotificationApp(notification_settings)))


async def _serve_billing(
    stack: contextlib.AsyncExitStack, database_url: str, **settings: Any
) -> tuple[BillingApp, InProcessServer]:
    billing_settings = BillingSettings(
        database_url=database_url, notice_poll_seconds=POLL_SECONDS, **settings
    )
    await upgrade_database(database_url, BILLING_MIGRATIONS)
    app = BillingApp(billing_settings)
    return app, await stack.enter_async_context(serving(app))


async def _serve_analytics(
    stack: contextlib.AsyncExitStack, database_url: str, **settings: Any
) -> InProcessServer:
    analytics_settings = AnalyticsSettings(database_url=database_url, redis_url=None, **settings)
    await upgrade_database(database_url, ANALYTICS_MIGRATIONS)
    return await stack.enter_async_context(serving(AnalyticsApp(analytics_settings)))


async def _serve_stand_in(
    stack: contextlib.AsyncExitStack, analytics: analytics_pb2_grpc.AnalyticsServiceServicer
) -> InProcessServer:
    registration = ServiceRegistration(
        analytics,
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
        "zoptal.analytics.v1.AnalyticsService",
    )
    return await stack.enter_async_context(serve_in_process([registration], interceptors=[]))


async def _serve_project(
    stack: contextlib.AsyncExitStack, database_url: str, **settings: Any
) -> tuple[ProjectApp, InProcessServer]:
    project_settings = ProjectSettings(
        database_url=database_url,
        **{"usage_outbox_poll_seconds": POLL_SECONDS, **settings},
    )
    await upgrade_database(database_url, PROJECT_MIGRATIONS)
    app = ProjectApp(project_settings)
    return app, await stack.enter_async_context(serving(app))
