"""Cross-user idempotency keys: another caller reusing someone's key, on the whole platform.

Keys belong to the caller who sent them. Another caller sending the same `request_id`,
`idempotency_key` or `event_id` gets a record of its own: the first caller's data is neither
replaced, returned to the other caller, nor dropped, and no answer says the key was in use.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from zoptal.analytics.v1 import analytics_pb2 as A
from zoptal.auth.v1 import auth_pb2 as auth
from zoptal.notification.v1 import notification_pb2 as N
from zoptal.project.v1 import project_pb2 as P

from tests.fuzz.calls import Metadata, bearer
from tests.fuzz.conftest import Mesh
from tests.mesh import PASSWORD


def _new_user(mesh: Mesh) -> tuple[str, Metadata]:
    email = f"erin-{uuid.uuid4().hex[:8]}@example.com"
    mesh.ok("auth", "RegisterUser", auth.RegisterUserRequest(email=email, password=PASSWORD), ())
    login: Any = mesh.ok("auth", "Login", auth.LoginRequest(email=email, password=PASSWORD), ())
    return login.user.id, bearer(login.access_token)


def test_an_admin_reusing_a_users_request_id_creates_a_project_of_its_own(mesh: Mesh) -> None:
    """Erin creates with "plan-1"; the admin creating for Erin with "plan-1" gets a new
    project (no replay of Erin's, no ALREADY_EXISTS about the key); both replay their own."""
    erin, erin_bearer = _new_user(mesh)
    key = f"plan-{uuid.uuid4().hex[:8]}"
    own: Any = mesh.ok(
        "project", "CreateProject", P.CreateProjectRequest(name="Own", request_id=key), erin_bearer
    )
    for_erin = P.CreateProjectRequest(name="Onboarding", owner_id=erin, request_id=key)
    by_admin: Any = mesh.ok("project", "CreateProject", for_erin, mesh.admin.metadata)
    assert by_admin.project.id != own.project.id
    assert (by_admin.project.name, by_admin.project.owner_id) == ("Onboarding", erin)
    again: Any = mesh.ok("project", "CreateProject", for_erin, mesh.admin.metadata)
    mine: Any = mesh.ok(
        "project", "CreateProject", P.CreateProjectRequest(name="Own", request_id=key), erin_bearer
    )
    assert (again.project.id, mine.project.id) == (by_admin.project.id, own.project.id)
    listed: Any = mesh.ok("project", "ListUserProjects", P.ListUserProjectsRequest(), erin_bearer)
    assert sorted(p.project.name for p in listed.projects) == ["Onboarding", "Own"]


def test_another_sender_reusing_billings_key_sends_its_own_notification(mesh: Mesh) -> None:
    """The operator's service sends with the key Billing used for Alice's email, other content:
    OK and new (not ALREADY_EXISTS, not Alice's notification); Alice's email is unchanged."""
    request = N.SendEmailRequest(
        to="bob@example.com",
        user_id=mesh.bob.user_id,
        subject="for bob",
        body_text="hello",
        idempotency_key="fuzz-setup",  # Billing's key for Alice's email (tests.fuzz.conftest)
    )
    sent: Any = mesh.ok("notification", "SendEmail", request, mesh.service_metadata)
    assert not sent.deduplicated
    assert sent.notification_id != mesh.alice_notification_id
    repeated: Any = mesh.ok("notification", "SendEmail", request, mesh.service_metadata)
    assert (repeated.notification_id, repeated.deduplicated) == (sent.notification_id, True)
    alices: Any = mesh.ok(
        "notification",
        "GetNotification",
        N.GetNotificationRequest(notification_id=mesh.alice_notification_id),
        mesh.admin.metadata,
    )
    assert (alices.notification.user_id, alices.notification.subject) == (
        mesh.alice.user_id,
        "for alice only",
    )


def test_two_users_reusing_an_event_id_are_both_counted(mesh: Mesh) -> None:
    """Erin and Bob track event_id "evt-…": each user has one such event, a resend by either
    adds nothing."""
    erin, erin_bearer = _new_user(mesh)
    event_id = f"evt-{uuid.uuid4().hex[:8]}"
    name = f"shared_{uuid.uuid4().hex[:8]}"
    for who in (erin_bearer, mesh.bob.metadata, erin_bearer, mesh.bob.metadata):
        tracked: Any = mesh.ok(
            "analytics", "TrackEvent", A.TrackEventRequest(name=name, event_id=event_id), who
        )
        assert tracked.event_id == event_id
    now_ms = int(time.time() * 1000)
    start, end = Timestamp(), Timestamp()
    start.FromMilliseconds(now_ms - 3_600_000)
    end.FromMilliseconds(now_ms + 3_600_000)
    counts = {}
    for user_id in (erin, mesh.bob.user_id):
        report: Any = mesh.ok(
            "analytics",
            "GetAnalytics",
            A.GetAnalyticsRequest(
                start_time=start,
                end_time=end,
                bucket=A.BUCKET_SIZE_HOUR,
                event_names=[name],
                user_id=user_id,
            ),
            mesh.admin.metadata,
        )
        counts[user_id] = report.total_events
    assert counts == {erin: 1, mesh.bob.user_id: 1}
