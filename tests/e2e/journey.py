"""What a client of a running platform needs for the user journey: stubs, credentials, polling.

Every call is a real gRPC call over a channel to the platform's ports. Users authenticate with the
access token Auth gives them at login; reads only an operator may make (aggregate and real-time
analytics) carry a seed-style ``x-service-token`` signed with the platform's
``SERVICE_TOKEN_SECRET`` (the development value, as ``make run`` uses it).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

import grpc
import jwt
from meshcore.settings import DEV_SERVICE_TOKEN_SECRET
from zoptal.analytics.v1 import analytics_pb2_grpc
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.billing.v1 import billing_pb2_grpc
from zoptal.notification.v1 import notification_pb2_grpc
from zoptal.project.v1 import project_pb2_grpc
from zoptal_platform.mail_sink import read_mailbox

from tests.e2e.platform import EmbeddedPlatform

__all__ = [
    "Metadata",
    "Stubs",
    "User",
    "bearer",
    "mail_to",
    "open_stubs",
    "operator_metadata",
    "poll",
    "register_and_login",
]

Metadata = Sequence[tuple[str, str]]
T = TypeVar("T")
PASSWORD = "correct-horse-battery-9"
CALL_TIMEOUT = 15.0


@dataclass(frozen=True)
class Stubs:
    auth: auth_pb2_grpc.AuthServiceStub
    project: project_pb2_grpc.ProjectServiceStub
    billing: billing_pb2_grpc.BillingServiceStub
    notification: notification_pb2_grpc.NotificationServiceStub
    analytics: analytics_pb2_grpc.AnalyticsServiceStub


@contextmanager
def open_stubs(platform: EmbeddedPlatform) -> Iterator[Stubs]:
    addresses = (
        platform.auth,
        platform.project,
        platform.billing,
        platform.notification,
        platform.analytics,
    )
    channels = [grpc.insecure_channel(address) for address in addresses]
    try:
        yield Stubs(
            auth_pb2_grpc.AuthServiceStub(channels[0]),
            project_pb2_grpc.ProjectServiceStub(channels[1]),
            billing_pb2_grpc.BillingServiceStub(channels[2]),
            notification_pb2_grpc.NotificationServiceStub(channels[3]),
            analytics_pb2_grpc.AnalyticsServiceStub(channels[4]),
        )
    finally:
        for channel in channels:
            channel.close()


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    access_token: str

    @property
    def metadata(self) -> Metadata:
        return bearer(self.access_token)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def register_and_login(auth: auth_pb2_grpc.AuthServiceStub, name: str = "journey") -> User:
    email = f"{name}-{uuid.uuid4().hex[:10]}@example.com"
    auth.RegisterUser(
        auth_pb2.RegisterUserRequest(email=email, password=PASSWORD, display_name="Ada"),
        timeout=CALL_TIMEOUT,
    )
    login = auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=CALL_TIMEOUT)
    return User(login.user.id, email, login.access_token)


def operator_metadata(permissions: Sequence[str]) -> Metadata:
    """A short-lived service token, as another service of the platform would present."""
    secret = os.environ.get("SERVICE_TOKEN_SECRET") or DEV_SERVICE_TOKEN_SECRET
    now = int(time.time())
    claims = {
        "sub": "e2e-operator",
        "serviceId": "e2e-operator",
        "serviceName": "End-to-end tests",
        "permissions": list(permissions),
        "typ": "service",
        "iat": now,
        "exp": now + 600,
    }
    return (("x-service-token", jwt.encode(claims, secret, algorithm="HS256")),)


def mail_to(mail_dir: Path, address: str) -> list[EmailMessage]:
    """Every message the platform's SMTP sink has received for ``address``, oldest first."""
    return [message for message in read_mailbox(mail_dir) if address in str(message["To"])]


def poll(
    probe: Callable[[], T], done: Callable[[T], bool], *, what: str, timeout: float = 60.0
) -> T:
    """Call ``probe`` until ``done`` accepts its result; fail naming ``what`` at the deadline.

    For effects that are asynchronous by design (email delivery, the analytics write buffer):
    the deadline bounds the wait, the interval only spaces the probes.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s; last: {result!r}")
        time.sleep(0.25)
