"""Serving Billing in-process behind meshcore's real interceptor chain, and minting tokens."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import jwt
from meshcore.clock import Clock
from meshcore.migrations import upgrade_database
from meshcore.settings import Secret
from prometheus_client import CollectorRegistry
from zoptal.billing.v1 import billing_pb2_grpc
from zoptal_billing import MIGRATIONS_DIR
from zoptal_billing.app import BillingApp
from zoptal_billing.notices import NoticeSender
from zoptal_billing.settings import BillingSettings

from tests.mesh import serving
from tests.tokens import MINT, trusting_chain

USER_TOKEN_SECRET = "user-token-secret-for-integration-tests-0123456789"


def user_token(
    subject: str, permissions: Iterable[str] = (), roles: Iterable[str] = ("user",)
) -> str:
    """An HS256 user access token as Auth would issue it (JWT_SECRET compatibility mode)."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "typ": "access",
        "iss": "zoptal-auth",
        "aud": "zoptal",
        "permissions": list(permissions),
        "roles": list(roles),
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, USER_TOKEN_SECRET, algorithm="HS256")


def as_user(subject: str, *permissions: str, roles: Iterable[str] = ("user",)) -> tuple:
    return (("authorization", f"Bearer {user_token(subject, permissions, roles)}"),)


def as_service(service: str, *permissions: str) -> tuple:
    """A service token as Auth would grant it (signed by the test suite's issuer key)."""
    return MINT.as_service(service, *permissions)


METER = as_service("project", "billing:read", "billing:write")
"""Project's service token, as it meters usage."""
ADMIN = as_user("root", roles=("user", "admin"))


class DiscardNotices:
    """A notice sender for tests that do not look at threshold emails."""

    async def send(self, notice: object) -> None:
        """Threshold emails are not what these tests look at."""


def billing_settings(database_url: str, **overrides: object) -> BillingSettings:
    """Billing settings for tests: HS256 user tokens, no JWKS fetch, no metrics port."""
    values: dict[str, object] = {
        "database_url": database_url,
        "jwt_secret": Secret(USER_TOKEN_SECRET),
        "auth_jwks_url": "",
        "metrics_port": 0,
        "notice_poll_seconds": 0.2,
        "rate_limit_max_requests": 100_000,
    }
    values.update(overrides)
    return BillingSettings(**values)  # type: ignore[arg-type]


@dataclass
class RunningBilling:
    stub: billing_pb2_grpc.BillingServiceStub
    app: BillingApp
    address: str


@contextlib.asynccontextmanager
async def running_billing(
    settings: BillingSettings,
    *,
    sender: NoticeSender | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[RunningBilling]:
    """Migrate, then serve BillingService over a real channel with its background work on.

    ``clock`` drives Billing itself (billing periods, test-mode payments settling, the
    background passes); tokens are still checked on the real clock, so a test can move Billing
    to the end of the month without its callers' tokens expiring.
    """
    await upgrade_database(settings.database_url, MIGRATIONS_DIR)
    if clock is None:
        app = BillingApp(settings, sender=sender)
        chain = app.interceptors(metrics_registry=CollectorRegistry(), key_source=MINT.keys)
    else:
        app = BillingApp(settings, sender=sender, clock=clock)
        chain = trusting_chain(settings, metrics_registry=CollectorRegistry())
    async with serving(app, chain) as served:
        yield RunningBilling(
            billing_pb2_grpc.BillingServiceStub(served.channel), app, served.address
        )
