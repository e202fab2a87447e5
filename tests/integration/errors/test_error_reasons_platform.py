"""Every error reason, produced by a real call to the real services and read by the typed clients.

The five services run in-process behind their production interceptor chains
(``tests/mesh.py``); each test makes the failing call through ``zoptal.clients`` and
checks what ``zoptal.clients.errors.ApiError`` exposes: the reason, its domain, the field
violations, the retry delay (only where waiting helps) and the resource. Billing's own reasons
need a fake clock and another payment provider: tests/integration/billing/
test_billing_error_reasons.py. The rest: RATE_LIMITED (tests/integration/auth/test_rate_limits.py),
HASHING_BUSY (test_hashing_bounds.py), DEPENDENCY_UNAVAILABLE
(tests/integration/project/test_project_journey.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from meshcore.client_manager import create_grpc_client_manager
from meshcore.errors import FieldViolation
from meshcore.interceptors.auth import SERVICE_TOKEN_HEADER
from zoptal.analytics.v1 import analytics_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.clients import (
    AnalyticsServiceClient,
    AuthServiceClient,
    BillingServiceClient,
    NotificationServiceClient,
    ProjectServiceClient,
)
from zoptal.clients.errors import (
    AbortedError,
    AlreadyExistsError,
    ApiError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from zoptal.project.v1 import project_pb2

from tests.fuzz.tokens import user_claims
from tests.identities import credential_of
from tests.mesh import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, InProcessMesh, serve_mesh

pytestmark = pytest.mark.asyncio(loop_scope="module")

Metadata = tuple[tuple[str, str], ...]


@dataclass
class Mesh:
    running: InProcessMesh
    auth: AuthServiceClient
    project: ProjectServiceClient
    billing: BillingServiceClient
    notification: NotificationServiceClient
    analytics: AnalyticsServiceClient

    async def user(self, label: str) -> tuple[str, str]:
        """A new user: (user id, access token)."""
        email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
        await self.auth.register_user(email, PASSWORD)
        login = await self.auth.login(email, PASSWORD)
        return login.user.id, login.access_token

    async def service(self, name: str) -> Metadata:
        """A platform service's own token, issued by Auth for its credential file."""
        credential = credential_of(self.running.identities_dir, name)
        issued = await self.auth.issue_service_token(credential.client_id, credential.client_secret)
        return ((SERVICE_TOKEN_HEADER, issued.access_token),)

    async def admin(self) -> Metadata:
        login = await self.auth.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        return bearer(login.access_token)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    data_dir: Path = tmp_path_factory.mktemp("error-reasons")
    async with serve_mesh(data_dir) as running:
        manager = create_grpc_client_manager(
            running.addresses, interceptors=(), health_checks=False
        )
        async with manager:
            yield Mesh(
                running,
                AuthServiceClient(manager),
                ProjectServiceClient(manager),
                BillingServiceClient(manager),
                NotificationServiceClient(manager),
                AnalyticsServiceClient(manager),
            )


async def failure(call: Awaitable[Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    return caught.value


# -- shared reasons (meshcore) ----------------------------------------------------------------


async def test_a_call_without_credentials_is_credentials_missing(mesh: Mesh) -> None:
    error = await failure(mesh.project.get_project("any"))
    assert isinstance(error, UnauthenticatedError)
    assert (error.reason, error.domain) == ("CREDENTIALS_MISSING", "zoptal.project.v1")
    assert error.retry_after is None


async def test_an_untrustworthy_token_is_token_invalid_and_says_why(mesh: Mesh) -> None:
    error = await failure(mesh.billing.get_subscription_plans(metadata=bearer("not.a.jwt")))
    assert isinstance(error, UnauthenticatedError)
    assert (error.reason, error.domain) == ("TOKEN_INVALID", "zoptal.billing.v1")
    assert error.metadata == {"token_problem": "malformed"}


async def test_an_expired_token_is_token_expired(mesh: Mesh) -> None:
    user_id, _ = await mesh.user("expired")
    an_hour_ago = int(time.time()) - 3600
    token = mesh.running.signing_key.sign(
        user_claims(user_id, iat=an_hour_ago - 600, nbf=an_hour_ago - 600, exp=an_hour_ago)
    )
    error = await failure(mesh.project.list_user_projects(user_id, metadata=bearer(token)))
    assert isinstance(error, UnauthenticatedError)
    assert error.reason == "TOKEN_EXPIRED"


async def test_a_revoked_token_is_token_revoked_once_the_revocation_reaches_a_service(
    mesh: Mesh,
) -> None:
    _, token = await mesh.user("revoked")
    assert (await mesh.auth.revoke_token(token, metadata=bearer(token))).revoked

    async def still_accepted() -> bool:
        try:
            await mesh.billing.get_subscription_plans(metadata=bearer(token))
        except UnauthenticatedError:
            return False
        return True

    for _ in range(75):  # up to 15 s: the services poll Auth's revocations every second
        if not await still_accepted():
            break
        await asyncio.sleep(0.2)
    error = await failure(mesh.billing.get_subscription_plans(metadata=bearer(token)))
    assert isinstance(error, UnauthenticatedError)
    assert (error.reason, error.domain) == ("TOKEN_REVOKED", "zoptal.billing.v1")


async def test_the_project_limit_is_plan_limit_reached_without_retry_info(mesh: Mesh) -> None:
    _, token = await mesh.user("projects")
    for index in range(3):  # the free plan allows three
        await mesh.project.create_project(f"P{index}", metadata=bearer(token))
    error = await failure(mesh.project.create_project("P3", metadata=bearer(token)))
    assert isinstance(error, ResourceExhaustedError)
    assert (error.reason, error.domain) == ("PLAN_LIMIT_REACHED", "zoptal.project.v1")
    assert error.retry_after is None  # waiting does not help: upgrading does
    assert dict(error.metadata) == {
        "metric": "projects",
        "limit": "3",
        "plan_id": "free",
        "used": "3",
    }


async def test_billings_plan_limit_reaches_the_member_adder_as_such(mesh: Mesh) -> None:
    """AddProjectMember has no advance check: Billing's RecordUsage refuses the seat, and
    Project tells this plan limit from a rate limit by Billing's reason."""
    _, token = await mesh.user("owner")
    created = await mesh.project.create_project("Crew", metadata=bearer(token))
    members = [await mesh.user(f"member{index}") for index in range(5)]
    for user_id, _ in members[:4]:  # the owner's seat and four more fill the free plan's five
        await mesh.project.add_project_member(
            created.project.id,
            user_id,
            project_pb2.PROJECT_ROLE_EDITOR,
            metadata=bearer(token),
        )
    error = await failure(
        mesh.project.add_project_member(
            created.project.id,
            members[4][0],
            project_pb2.PROJECT_ROLE_VIEWER,
            metadata=bearer(token),
        )
    )
    assert isinstance(error, ResourceExhaustedError)
    assert (error.reason, error.retry_after) == ("PLAN_LIMIT_REACHED", None)
    assert error.metadata["metric"] == "members_per_project"
    assert error.metadata["limit"] == "5"


async def test_reused_idempotency_keys_are_idempotency_key_reused(mesh: Mesh) -> None:
    user_id, token = await mesh.user("keys")
    as_project = await mesh.service("project")
    await mesh.billing.record_usage(
        user_id, billing_pb2.METRIC_API_CALLS, 1, "k-1", metadata=as_project
    )
    billing_error = await failure(
        mesh.billing.record_usage(
            user_id, billing_pb2.METRIC_API_CALLS, 2, "k-1", metadata=as_project
        )
    )
    as_billing = await mesh.service("billing")
    await mesh.notification.send_email(
        "ada@example.com", "Hello", "Hi", idempotency_key="n-1", metadata=as_billing
    )
    notification_error = await failure(
        mesh.notification.send_email(
            "ada@example.com", "Goodbye", "Bye", idempotency_key="n-1", metadata=as_billing
        )
    )
    await mesh.project.create_project("First", request_id="r-1", metadata=bearer(token))
    project_error = await failure(
        mesh.project.create_project("Second", request_id="r-1", metadata=bearer(token))
    )
    for error, domain in (
        (billing_error, "zoptal.billing.v1"),
        (notification_error, "zoptal.notification.v1"),
        (project_error, "zoptal.project.v1"),
    ):
        assert isinstance(error, AlreadyExistsError)
        assert (error.reason, error.domain) == ("IDEMPOTENCY_KEY_REUSED", domain)


async def test_recording_past_the_limit_is_billings_plan_limit_reached(mesh: Mesh) -> None:
    user_id, _ = await mesh.user("meter")
    error = await failure(
        mesh.billing.record_usage(
            user_id,
            billing_pb2.METRIC_API_CALLS,
            10_001,  # the free plan allows 10 000 calls a period
            "over-1",
            enforce_limit=True,
            metadata=await mesh.service("project"),
        )
    )
    assert isinstance(error, ResourceExhaustedError)
    assert (error.reason, error.domain, error.retry_after) == (
        "PLAN_LIMIT_REACHED",
        "zoptal.billing.v1",
        None,
    )
    assert error.metadata["metric"] == "api_calls"


# -- Project's reasons ------------------------------------------------------------------------


async def test_a_taken_name_is_name_taken(mesh: Mesh) -> None:
    _, token = await mesh.user("names")
    await mesh.project.create_project("Atlas", metadata=bearer(token))
    error = await failure(mesh.project.create_project("atlas", metadata=bearer(token)))
    assert isinstance(error, AlreadyExistsError)
    assert error.reason == "NAME_TAKEN"


async def test_a_stale_version_is_version_conflict(mesh: Mesh) -> None:
    _, token = await mesh.user("versions")
    project = (await mesh.project.create_project("Vega", metadata=bearer(token))).project
    await mesh.project.update_project(
        project.id, project.version, description="first", metadata=bearer(token)
    )
    update_error = await failure(
        mesh.project.update_project(
            project.id, project.version, description="second", metadata=bearer(token)
        )
    )
    delete_error = await failure(
        mesh.project.delete_project(project.id, version=project.version, metadata=bearer(token))
    )
    for error in (update_error, delete_error):
        assert isinstance(error, AbortedError)
        assert (error.reason, error.domain) == ("VERSION_CONFLICT", "zoptal.project.v1")


# -- Auth's reasons ---------------------------------------------------------------------------


async def test_repeated_failed_logins_are_login_throttled_with_a_delay(mesh: Mesh) -> None:
    email = f"throttled-{uuid.uuid4().hex[:8]}@example.com"
    await mesh.auth.register_user(email, PASSWORD)
    for _ in range(20):
        error = await failure(mesh.auth.login(email, "not the password at all"))
        if isinstance(error, ResourceExhaustedError):
            break
        assert isinstance(error, UnauthenticatedError)
    assert isinstance(error, ResourceExhaustedError)
    assert (error.reason, error.domain) == ("LOGIN_THROTTLED", "zoptal.auth.v1")
    assert error.retry_after is not None
    assert error.retry_after > 0


# -- every field at once, in each service -----------------------------------------------------


def fields(error: ApiError) -> set[str]:
    assert isinstance(error, InvalidArgumentError)
    assert error.reason == "INVALID_ARGUMENT"
    return {violation.field for violation in error.field_violations}


async def test_auth_names_every_bad_field(mesh: Mesh) -> None:
    error = await failure(mesh.auth.register_user("not-an-email", "short", "x" * 101))
    assert fields(error) == {"email", "password", "display_name"}


async def test_project_names_every_bad_field(mesh: Mesh) -> None:
    _, token = await mesh.user("fields")
    error = await failure(
        mesh.project.create_project(
            "", description="d" * 2001, request_id="not a key", metadata=bearer(token)
        )
    )
    assert fields(error) == {"name", "description", "request_id"}


async def test_notification_names_every_bad_field(mesh: Mesh) -> None:
    error = await failure(
        mesh.notification.send_sms(
            "12345", "", idempotency_key="", metadata=await mesh.service("billing")
        )
    )
    assert fields(error) == {"to", "body", "idempotency_key"}


async def test_analytics_names_every_bad_field(mesh: Mesh) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    error = await failure(
        mesh.analytics.get_analytics(epoch, epoch, top_limit=101, metadata=await mesh.admin())
    )
    assert fields(error) == {"start_time", "end_time", "bucket", "top_limit"}
    assert FieldViolation("bucket", "required: minute, hour or day") in error.field_violations


async def test_analytics_ingest_names_every_bad_field(mesh: Mesh) -> None:
    """An event is checked field by field, each field once (not stopping at the first)."""
    error = await failure(
        mesh.analytics.track_event(
            "bad name!",
            user_id="u" * 65,
            event_id="not an id",
            session_id="s" * 129,
            metadata=await mesh.service("project"),
        )
    )
    assert fields(error) == {"name", "user_id", "event_id", "session_id"}


async def test_billing_names_every_bad_field(mesh: Mesh) -> None:
    error = await failure(
        mesh.billing.record_usage(
            "", billing_pb2.METRIC_UNSPECIFIED, 0, "", metadata=await mesh.service("project")
        )
    )
    assert fields(error) == {"user_id", "idempotency_key", "metric"}


async def test_a_report_without_events_is_still_fine(mesh: Mesh) -> None:
    """The collected checks pass a valid request through untouched."""
    reply = await mesh.analytics.get_analytics(
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
        bucket=analytics_pb2.BUCKET_SIZE_HOUR,
        metadata=await mesh.admin(),
    )
    assert len(reply.buckets) == 24
