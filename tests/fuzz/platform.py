"""All five services, in-process, behind their production interceptor chains, on a background loop.

The servers run on their own event loop in a daemon thread, so hypothesis tests stay plain
synchronous functions calling through ordinary blocking channels: no event-loop scope games, and
one platform serves the whole fuzz session. Each service is built with the same builders its own
integration tests use (``build_app``, ``ProjectApp``, ``BillingApp``, ``NotificationApp``,
``AnalyticsApp``), migrated with Alembic, and served by ``meshcore.testing.serve_in_process``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from meshcore.jwt import SigningKey
from meshcore.migrations import upgrade_database
from meshcore.settings import Secret
from meshcore.testing import serve_in_process
from prometheus_client import CollectorRegistry
from zoptal_analytics.app import MIGRATIONS_DIR as ANALYTICS_MIGRATIONS, AnalyticsApp
from zoptal_analytics.settings import AnalyticsSettings
from zoptal_auth.app import MIGRATIONS_DIR as AUTH_MIGRATIONS, build_app as build_auth
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

__all__ = [
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "PASSWORD",
    "BackgroundLoop",
    "RunningPlatform",
    "platform",
]

T = TypeVar("T")

ADMIN_EMAIL = "fuzz-admin@example.com"
ADMIN_PASSWORD = secrets.token_urlsafe(24)
"""Made for this run: Auth bootstraps the admin with it (AUTH_BOOTSTRAP_ADMIN_PASSWORD)."""
PASSWORD = "violet tractor harbour"
CHEAP_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
}
# Fuzzing sends thousands of calls from one peer: the limiter is not what is under test here.
COMMON: dict[str, Any] = {"metrics_port": 0, "rate_limit_max_requests": 10_000_000}


@dataclass(frozen=True)
class RunningPlatform:
    """Where each service listens (``host:port``, keyed by short name) and Auth's signing key.

    The real signing key lets token attacks change one claim of an otherwise valid token.
    ``identities_dir`` holds each platform service's own credential, provisioned as
    ``service-identity ensure`` does; ``auth_environment`` is what Auth's command line needs to
    act on this platform (``DATA_DIR``, ``DATABASE_URL``), as the launcher sets them.
    """

    by_service: dict[str, str]
    jwks_url: str
    signing_key: SigningKey
    identities_dir: Path
    auth_environment: dict[str, str]


class BackgroundLoop:
    """An event loop running in a daemon thread; ``run`` executes a coroutine on it."""

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


def _registry() -> CollectorRegistry:
    return CollectorRegistry()


@contextlib.asynccontextmanager
async def platform(
    data_dir: Path, url_for: Callable[[str], str] | None = None
) -> AsyncIterator[RunningPlatform]:
    """Migrate and serve Auth, Notification, Billing, Analytics and Project; yield addresses.

    ``url_for(service)`` gives each service's database URL; SQLite files in ``data_dir`` when
    omitted.
    """

    def database(name: str) -> str:
        return url_for(name) if url_for else f"sqlite+aiosqlite:///{data_dir / f'{name}.db'}"

    async with contextlib.AsyncExitStack() as stack:
        auth_settings = AuthSettings(
            data_dir=data_dir,
            database_url=database("auth"),
            auth_http_port=0,
            auth_bootstrap_admin_email=ADMIN_EMAIL,
            auth_bootstrap_admin_password=Secret(ADMIN_PASSWORD),
            **CHEAP_ARGON2,
            **COMMON,
        )
        await upgrade_database(auth_settings.database_url, AUTH_MIGRATIONS)
        # Every platform service's own account and credential file, as the launcher makes them.
        identities = data_dir / "identities"
        await provision(auth_settings, identities, *PLATFORM_SERVICES)
        auth_app = await build_auth(auth_settings)
        await auth_app.auth.ensure_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        jwks_port = await auth_app.jwks_http.start()
        auth = await stack.enter_async_context(
            serve_in_process(
                auth_app.registrations,
                settings=auth_settings,
                interceptors=auth_app.interceptors(),
                dependency_checks=auth_app.dependency_checks,
                on_shutdown=[auth_app.close],
            )
        )
        jwks_url = f"http://127.0.0.1:{jwks_port}/.well-known/jwks.json"

        notification_settings = NotificationSettings(
            data_dir=data_dir,
            database_url=database("notification"),
            service_credentials_file=credentials_path(identities, "notification"),
            celery_broker_url=f"sqla+sqlite:///{data_dir / 'broker.db'}",
            auth_jwks_url=jwks_url,
            peers={"auth": (auth.address,)},
            **COMMON,
        )
        await upgrade_database(notification_settings.database_url, NOTIFICATION_MIGRATIONS)
        notification_app = NotificationApp(notification_settings)
        notification = await stack.enter_async_context(
            serve_in_process(
                notification_app.registrations,
                settings=notification_settings,
                interceptors=notification_app.interceptors(metrics_registry=_registry()),
                on_shutdown=[notification_app.close],
            )
        )
        notification_app.start_background()

        billing_settings = BillingSettings(
            data_dir=data_dir,
            database_url=database("billing"),
            service_credentials_file=credentials_path(identities, "billing"),
            auth_jwks_url=jwks_url,
            notice_poll_seconds=0.5,
            peers={"auth": (auth.address,), "notification": (notification.address,)},
            **COMMON,
        )
        await upgrade_database(billing_settings.database_url, BILLING_MIGRATIONS)
        billing_app = BillingApp(billing_settings)
        billing = await stack.enter_async_context(
            serve_in_process(
                billing_app.registrations,
                settings=billing_settings,
                interceptors=billing_app.interceptors(metrics_registry=_registry()),
                on_shutdown=[billing_app.close],
            )
        )
        billing_app.start_background()

        analytics_settings = AnalyticsSettings(
            data_dir=data_dir,
            database_url=database("analytics"),
            service_credentials_file=credentials_path(identities, "analytics"),
            redis_url=None,
            auth_jwks_url=jwks_url,
            peers={"auth": (auth.address,)},
            **COMMON,
        )
        await upgrade_database(analytics_settings.database_url, ANALYTICS_MIGRATIONS)
        analytics_app = AnalyticsApp(analytics_settings)
        analytics = await stack.enter_async_context(
            serve_in_process(
                analytics_app.registrations,
                settings=analytics_settings,
                interceptors=analytics_app.interceptors(metrics_registry=_registry()),
                on_shutdown=[analytics_app.close],
            )
        )
        analytics_app.start_background()

        project_settings = ProjectSettings(
            data_dir=data_dir,
            database_url=database("project"),
            service_credentials_file=credentials_path(identities, "project"),
            auth_jwks_url=jwks_url,
            usage_outbox_poll_seconds=0.5,
            peers={
                "auth": (auth.address,),
                "billing": (billing.address,),
                "analytics": (analytics.address,),
            },
            **COMMON,
        )
        await upgrade_database(project_settings.database_url, PROJECT_MIGRATIONS)
        project_app = ProjectApp(project_settings)
        project = await stack.enter_async_context(
            serve_in_process(
                project_app.registrations,
                settings=project_settings,
                interceptors=project_app.interceptors(metrics_registry=_registry()),
                on_shutdown=[project_app.close],
            )
        )
        project_app.start_background()

        yield RunningPlatform(
            by_service={
                "auth": auth.address,
                "project": project.address,
                "billing": billing.address,
                "notification": notification.address,
                "analytics": analytics.address,
            },
            jwks_url=jwks_url,
            signing_key=auth_app.keys.current,
            identities_dir=identities,
            auth_environment={
                "DATA_DIR": str(data_dir),
                "DATABASE_URL": auth_settings.database_url,
                **{name.upper(): str(value) for name, value in CHEAP_ARGON2.items()},
            },
        )
