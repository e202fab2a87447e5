"""While Notification is down usage is still recorded; the emails arrive once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from meshcore.client_manager import BreakerSettings
from meshcore.interceptors.chain import build_server_chain
from meshcore.migrations import upgrade_database
from meshcore.server import MeshServer
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.billing.v1 import billing_pb2 as pb, billing_pb2_grpc
from zoptal.clients.service_identity import identified_clients
from zoptal.notification.v1 import notification_pb2, notification_pb2_grpc
from zoptal_auth.app import MIGRATIONS_DIR as AUTH_MIGRATIONS, build_app as build_auth
from zoptal_billing import MIGRATIONS_DIR as BILLING_MIGRATIONS
from zoptal_billing.app import BillingApp
from zoptal_billing.models import ThresholdNoticeRow
from zoptal_billing.settings import BillingSettings
from zoptal_notification.app import MIGRATIONS_DIR as NOTIFICATION_MIGRATIONS, NotificationApp
from zoptal_notification.settings import NotificationSettings

from tests.identities import issued_token, provision
from tests.mesh import PASSWORD, auth_settings, serving, serving_auth
from tests.support import free_port

pytestmark = pytest.mark.postgres


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll a background effect (the dispatcher runs on its own schedule) for up to 30 s."""
    for _ in range(300):
        if await probe():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_threshold_emails_wait_for_notification_and_are_sent_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Usage crossing 80 %, then 100 %, is recorded with Notification down; both emails come
    later."""
    auth_config = auth_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    await upgrade_database(auth_config.database_url, AUTH_MIGRATIONS)
    identities = tmp_path / "identities"
    await provision(auth_config, identities, "billing", "project")
    auth_app = await build_auth(auth_config)
    jwks_url = f"http://127.0.0.1:{await auth_app.jwks_http.start()}/.well-known/jwks.json"
    notification_port = free_port()
    async with serving_auth(auth_app) as auth_server:
        auth = auth_pb2_grpc.AuthServiceStub(auth_server.channel)
        user = (
            await auth.RegisterUser(
                auth_pb2.RegisterUserRequest(email="ada@example.com", password=PASSWORD)
            )
        ).user
        login = await auth.Login(auth_pb2.LoginRequest(email=user.email, password=PASSWORD))

        settings = BillingSettings(
            database_url=postgres_url,
            auth_jwks_url=jwks_url,
            service_credentials_file=identities / "billing" / "credentials.json",
            metrics_port=0,
            notice_poll_seconds=0.2,
            notice_max_backoff_seconds=0.5,
            peers={
                "auth": (auth_server.address,),
                "notification": (f"127.0.0.1:{notification_port}",),
            },
        )
        # Fast breaker recovery and no health-check loop, so the test need not wait out
        # production timings once Notification is back.
        clients, billing_token = identified_clients(
            settings,
            breaker=BreakerSettings(recovery_timeout=300, monitoring_period=1_000),
            health_checks=False,
        )
        await billing_token.refresh()  # Billing's own token, from its own credential
        await upgrade_database(postgres_url, BILLING_MIGRATIONS)
        billing_app = BillingApp(settings, clients=clients)
        async with serving(billing_app) as billing_server:
            billing = billing_pb2_grpc.BillingServiceStub(billing_server.channel)
            meter = (("x-service-token", await issued_token(auth, identities, "project")),)
            # Five members of one project, one at a time (limit 5): 80 % at 4, 100 % at 5.
            for index in range(5):
                await billing.RecordUsage(
                    pb.RecordUsageRequest(
                        user_id=user.id,
                        metric=pb.METRIC_MEMBERS_PER_PROJECT,
                        scope_id="p1",
                        quantity=1,
                        idempotency_key=f"m{index}",
                        enforce_limit=True,
                    ),
                    metadata=meter,
                )

            async def notices() -> list[ThresholdNoticeRow]:
                async with billing_app.database.session() as session:
                    return list((await session.scalars(select(ThresholdNoticeRow))).all())

            async def retried_while_down() -> bool:
                rows = await notices()
                return len(rows) == 2 and all(n.attempts >= 2 for n in rows)

            await eventually(retried_while_down, "two failed attempts per notice")
            assert all(n.delivered_at is None for n in await notices())

            notification_settings = NotificationSettings(
                data_dir=tmp_path,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'notification.db'}",
                celery_broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
                auth_jwks_url=jwks_url,
                grpc_port=notification_port,
                metrics_port=0,
                shutdown_grace_seconds=1.0,
            )
            await upgrade_database(notification_settings.database_url, NOTIFICATION_MIGRATIONS)
            notification_app = NotificationApp(notification_settings)
            notification_server = MeshServer(
                notification_settings,
                notification_app.registrations,
                interceptors=build_server_chain(
                    notification_settings, metrics_registry=CollectorRegistry()
                ),
                on_shutdown=[notification_app.close],
            )
            await notification_server.start()
            try:

                async def delivered() -> bool:
                    return all(n.delivered_at for n in await notices())

                await eventually(delivered, "both notices delivered")
                async with grpc.aio.insecure_channel(notification_server.address) as channel:
                    history = await notification_pb2_grpc.NotificationServiceStub(
                        channel
                    ).GetNotificationHistory(
                        notification_pb2.GetNotificationHistoryRequest(user_id=user.id),
                        metadata=(("authorization", f"Bearer {login.access_token}"),),
                    )
            finally:
                await notification_server.stop()
    assert len(history.notifications) == 2
    assert {n.recipient for n in history.notifications} == {"ada@example.com"}
