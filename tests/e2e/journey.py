"""What a client of a running platform needs for the user journey: stubs, credentials, polling.

Every call is a real gRPC call over a channel to the platform's ports. Users authenticate with the
access token Auth gives them at login; reads only an operator may make (aggregate and real-time
analytics) carry an ``x-service-token`` Auth issued for a service account the platform's admin
created (the admin Auth bootstraps from ``AUTH_BOOTSTRAP_ADMIN_*``), as an operator's tool would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

import grpc
from zoptal.analytics.v1 import analytics_pb2_grpc
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.billing.v1 import billing_pb2, billing_pb2_grpc
from zoptal.notification.v1 import notification_pb2_grpc
from zoptal.project.v1 import project_pb2, project_pb2_grpc
from zoptal_platform.mail_sink import read_mailbox

from tests.e2e.platform import EmbeddedPlatform

__all__ = [
    "Metadata",
    "Stubs",
    "User",
    "bearer",
    "create_project",
    "free_project_limit",
    "mail_to",
    "open_stubs",
    "operator_metadata",
    "poll",
    "register_and_login",
    "stubs_at",
]

Metadata = tuple[tuple[str, str | bytes], ...]
"""What grpc's ``metadata=`` takes."""
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
    with stubs_at(
        platform.auth, platform.project, platform.billing, platform.notification, platform.analytics
    ) as opened:
        yield opened


@contextmanager
def stubs_at(
    auth: str, project: str, billing: str, notification: str, analytics: str
) -> Iterator[Stubs]:
    """Stubs on plaintext channels to the five services at these ``host:port`` addresses."""
    channels = [
        grpc.insecure_channel(address)
        for address in (auth, project, billing, notification, analytics)
    ]
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


def create_project(stubs: Stubs, user: User, name: str) -> project_pb2.Project:
    request = project_pb2.CreateProjectRequest(name=name, request_id=uuid.uuid4().hex)
    reply = stubs.project.CreateProject(request, metadata=user.metadata, timeout=CALL_TIMEOUT)
    return reply.project


def free_project_limit(stubs: Stubs, user: User) -> int:
    """How many projects the free plan allows (Billing's plan, not a copy of it)."""
    plans = stubs.billing.GetSubscriptionPlans(
        billing_pb2.GetSubscriptionPlansRequest(), metadata=user.metadata, timeout=CALL_TIMEOUT
    ).plans
    free = next(plan for plan in plans if plan.id == "free")
    limit = next(item for item in free.limits if item.metric == billing_pb2.METRIC_PROJECTS)
    assert not limit.unlimited
    assert limit.limit >= 1
    return limit.limit


def usage_email_counts(subjects: Sequence[str], limit: int) -> dict[int, int]:
    """How many project-usage emails of each threshold percent are among ``subjects``."""
    return {
        80: sum("80%" in subject for subject in subjects),
        100: sum(f"limit of {limit} projects" in subject for subject in subjects),
    }


def usage_emails_expected(limit: int) -> dict[int, int]:
    """The project-usage emails of each threshold that creating projects one at a time up to
    ``limit`` sends. Billing emails only the highest threshold one change crosses, so the 80 %
    email comes only when a project before the last reaches 80 % (not on a plan of 3: the
    second is 67 %, the third 80 % and 100 % at once)."""
    reaches_80 = -(-80 * limit // 100)  # the first count at or above 80 % of the limit
    return {80: int(reaches_80 < limit), 100: 1}


def usage_emails_arrived(subjects: Sequence[str], limit: int) -> bool:
    """Every usage email creating ``limit`` projects sends is among ``subjects``."""
    counts = usage_email_counts(subjects, limit)
    return all(counts[percent] >= n for percent, n in usage_emails_expected(limit).items())


def assert_only_the_usage_emails(subjects: Sequence[str], limit: int) -> None:
    """``subjects`` are the usage emails creating ``limit`` projects sends, each once, and
    nothing else."""
    expected = usage_emails_expected(limit)
    assert usage_email_counts(subjects, limit) == expected, subjects
    assert len(subjects) == sum(expected.values()), subjects


def operator_metadata(
    platform: EmbeddedPlatform, auth: auth_pb2_grpc.AuthServiceStub, permissions: Sequence[str]
) -> Metadata:
    """A service token for an operator's tool: the admin creates a service account holding
    ``permissions`` (CreateServiceAccount), whose client credentials Auth exchanges for a
    short-lived token (IssueServiceToken)."""
    login = auth.Login(
        auth_pb2.LoginRequest(email=platform.admin_email, password=platform.admin_password),
        timeout=CALL_TIMEOUT,
    )
    created = auth.CreateServiceAccount(
        auth_pb2.CreateServiceAccountRequest(
            name=f"e2e-operator-{uuid.uuid4().hex[:8]}",
            description="end-to-end tests reading analytics",
            permissions=list(permissions),
        ),
        metadata=bearer(login.access_token),
        timeout=CALL_TIMEOUT,
    )
    issued = auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(
            client_id=created.service_account.client_id, client_secret=created.client_secret
        ),
        timeout=CALL_TIMEOUT,
    )
    assert issued.service_name == created.service_account.name
    assert list(issued.permissions) == sorted(permissions)
    return (("x-service-token", issued.access_token),)


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
