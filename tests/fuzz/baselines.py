"""One valid request per RPC, sent by whoever may send it, about one owner's own things.

The edge-value pass spoils one field of these at a time, so each must be accepted as it is
(test_edge_values checks that): only the spoiled field can then explain a refusal, and every
other field lets the call through to deep validation and the store. The owner, Erin, has her
own user, project, notification and the unlimited plan, so nothing the pass does runs into a
plan limit or another test's data.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.timestamp_pb2 import Timestamp
from zoptal.analytics.v1 import analytics_pb2 as analytics
from zoptal.auth.v1 import auth_pb2 as auth
from zoptal.billing.v1 import billing_pb2 as billing
from zoptal.notification.v1 import notification_pb2 as notification
from zoptal.project.v1 import project_pb2 as project

from tests.fuzz.calls import Metadata
from tests.fuzz.conftest import ClientCredentials, Identity, Mesh
from tests.mesh import PASSWORD

__all__ = ["BASELINES", "Baseline", "Scene", "prepare_scene"]

Caller = Literal["owner", "service", "admin", "anyone"]


@dataclass
class Scene:
    """Erin and her things on one running platform; ``unique()`` names fresh keys and names."""

    mesh: Mesh
    email: str
    owner: Identity
    spare: Identity  # a second login: its tokens are the ones RevokeToken and RefreshToken spend
    project_id: str
    notification_id: str
    operator: ClientCredentials
    _counter: Any = field(default_factory=itertools.count)
    _run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def unique(self) -> str:
        return f"edge-{self._run}-{next(self._counter)}"

    def metadata(self, caller: Caller) -> Metadata:
        if caller == "owner":
            return self.owner.metadata
        if caller == "service":
            return self.mesh.service_metadata  # the operator: every permission there is
        if caller == "admin":
            return self.mesh.admin.metadata
        return ()

    def fresh_project(self) -> str:
        """A new project of Erin's at version 1, for RPCs that change or delete one."""
        created: Any = self.mesh.ok(
            "project",
            "CreateProject",
            project.CreateProjectRequest(name=self.unique(), request_id=self.unique()),
            self.owner.metadata,
        )
        return str(created.project.id)

    def project_with_member(self) -> str:
        """A new project of Erin's with Bob as a viewer."""
        project_id = self.fresh_project()
        self.mesh.ok(
            "project",
            "AddProjectMember",
            project.AddProjectMemberRequest(
                project_id=project_id,
                user_id=self.mesh.bob.user_id,
                role=project.PROJECT_ROLE_VIEWER,
            ),
            self.owner.metadata,
        )
        return project_id


def _login(mesh: Mesh, email: str) -> Identity:
    login: Any = mesh.ok("auth", "Login", auth.LoginRequest(email=email, password=PASSWORD), ())
    return Identity(login.user.id, login.access_token, login.refresh_token)


def prepare_scene(mesh: Mesh) -> Scene:
    """Register Erin on ``mesh``, give her the unlimited plan, a project and a notification."""
    assert mesh.operator is not None
    email = f"erin-{uuid.uuid4().hex[:8]}@example.com"
    mesh.ok("auth", "RegisterUser", auth.RegisterUserRequest(email=email, password=PASSWORD), ())
    owner = _login(mesh, email)
    mesh.ok(  # paid plans need payment; an admin's complimentary grant does not
        "billing",
        "ChangeSubscription",
        billing.ChangeSubscriptionRequest(
            user_id=owner.user_id, plan_id="enterprise", complimentary=True
        ),
        mesh.admin.metadata,
    )
    created: Any = mesh.ok(
        "project",
        "CreateProject",
        project.CreateProjectRequest(name="erin's edge cases", request_id=uuid.uuid4().hex),
        owner.metadata,
    )
    sent: Any = mesh.ok(
        "notification",
        "SendEmail",
        notification.SendEmailRequest(
            to=email,
            user_id=owner.user_id,
            subject="for erin",
            body_text="x",
            idempotency_key=uuid.uuid4().hex,
        ),
        mesh.as_service("billing"),
    )
    return Scene(
        mesh,
        email,
        owner,
        _login(mesh, email),
        created.project.id,
        sent.notification_id,
        mesh.operator,
    )


def _now(offset_seconds: int = 0) -> Timestamp:
    return Timestamp(seconds=int(time.time()) + offset_seconds)


_PAGE: dict[str, Any] = {
    "url": "https://example.com/pricing",
    "title": "Pricing",
    "referrer": "https://example.com/",
}


def _tracked(s: Scene) -> dict[str, Any]:
    """The fields every analytics event carries, all set, so the walk reaches each of them."""
    return {
        "user_id": s.owner.user_id,
        "properties": {"plan": "enterprise"},
        "timestamp": _now(),
        "session_id": "session-1",
    }


def _event(s: Scene) -> analytics.Event:
    """A page view, so the walk reaches the page fields of an event too."""
    return analytics.Event(name="page_view", page=analytics.Page(**_PAGE), **_tracked(s))


@dataclass(frozen=True)
class Baseline:
    caller: Caller
    build: Callable[[Scene], Any]


A, B, N, P = auth, billing, notification, project
BASELINES: dict[str, Baseline] = {
    "auth.ValidateToken": Baseline(
        "owner", lambda s: A.ValidateTokenRequest(token=s.owner.access_token)
    ),
    "auth.GetUser": Baseline("owner", lambda s: A.GetUserRequest(user_id=s.owner.user_id)),
    "auth.GetUserPermissions": Baseline(
        "owner", lambda s: A.GetUserPermissionsRequest(user_id=s.owner.user_id)
    ),
    "auth.CreateServiceAccount": Baseline(
        "admin",
        lambda s: A.CreateServiceAccountRequest(
            name=s.unique(), description="edge values", permissions=["user:read"]
        ),
    ),
    "auth.HealthCheck": Baseline("owner", lambda s: A.HealthCheckRequest()),
    "auth.RegisterUser": Baseline(
        "anyone",
        lambda s: A.RegisterUserRequest(
            email=f"{s.unique()}@example.com", password=PASSWORD, display_name="Edge"
        ),
    ),
    "auth.Login": Baseline("anyone", lambda s: A.LoginRequest(email=s.email, password=PASSWORD)),
    "auth.RefreshToken": Baseline(
        "anyone", lambda s: A.RefreshTokenRequest(refresh_token=s.spare.refresh_token)
    ),
    "auth.RevokeToken": Baseline(
        "owner", lambda s: A.RevokeTokenRequest(token=s.spare.access_token)
    ),
    "auth.IssueServiceToken": Baseline(
        "anyone",
        lambda s: A.IssueServiceTokenRequest(
            client_id=s.operator.client_id,
            client_secret=s.operator.client_secret,
            permissions=["user:read"],
        ),
    ),
    "auth.GetJwks": Baseline("anyone", lambda s: A.GetJwksRequest()),
    "auth.ListRevocations": Baseline("service", lambda s: A.ListRevocationsRequest(cursor="")),
    "project.GetProject": Baseline("owner", lambda s: P.GetProjectRequest(project_id=s.project_id)),
    "project.ListUserProjects": Baseline(
        "owner", lambda s: P.ListUserProjectsRequest(user_id=s.owner.user_id, page=1, limit=10)
    ),
    "project.CreateProject": Baseline(
        "owner",
        lambda s: P.CreateProjectRequest(
            name=s.unique(),
            description="edge values",
            owner_id=s.owner.user_id,
            request_id=s.unique(),
        ),
    ),
    "project.UpdateProject": Baseline(
        "owner",
        lambda s: P.UpdateProjectRequest(
            project_id=s.fresh_project(), version=1, name=s.unique(), description="changed"
        ),
    ),
    "project.DeleteProject": Baseline(
        "owner", lambda s: P.DeleteProjectRequest(project_id=s.fresh_project(), version=1)
    ),
    "project.CheckProjectAccess": Baseline(
        "owner",
        lambda s: P.CheckProjectAccessRequest(
            user_id=s.owner.user_id, project_id=s.project_id, action=P.PROJECT_ACTION_READ
        ),
    ),
    "project.AddProjectMember": Baseline(
        "owner",
        lambda s: P.AddProjectMemberRequest(
            project_id=s.fresh_project(), user_id=s.mesh.bob.user_id, role=P.PROJECT_ROLE_VIEWER
        ),
    ),
    "project.RemoveProjectMember": Baseline(
        "owner",
        lambda s: P.RemoveProjectMemberRequest(
            project_id=s.project_with_member(), user_id=s.mesh.bob.user_id
        ),
    ),
    "project.ListProjectMembers": Baseline(
        "owner", lambda s: P.ListProjectMembersRequest(project_id=s.project_id, page=1, limit=10)
    ),
    "billing.GetUserSubscription": Baseline(
        "owner", lambda s: B.GetUserSubscriptionRequest(user_id=s.owner.user_id)
    ),
    "billing.CheckSubscriptionLimits": Baseline(
        "owner",
        lambda s: B.CheckSubscriptionLimitsRequest(
            user_id=s.owner.user_id, metric=B.METRIC_PROJECTS, quantity=1
        ),
    ),
    "billing.RecordUsage": Baseline(
        "service",
        lambda s: B.RecordUsageRequest(
            user_id=s.owner.user_id,
            metric=B.METRIC_API_CALLS,
            quantity=1,
            idempotency_key=s.unique(),
            enforce_limit=True,
        ),
    ),
    "billing.GetSubscriptionPlans": Baseline("owner", lambda s: B.GetSubscriptionPlansRequest()),
    "billing.ChangeSubscription": Baseline(
        "owner",
        lambda s: B.ChangeSubscriptionRequest(user_id=s.owner.user_id, plan_id="enterprise"),
    ),
    "notification.SendEmail": Baseline(
        "service",
        lambda s: N.SendEmailRequest(
            to=s.email,
            user_id=s.owner.user_id,
            subject="edge values",
            body_text="x",
            body_html="<p>x</p>",
            idempotency_key=s.unique(),
        ),
    ),
    "notification.SendSMS": Baseline(
        "service",
        lambda s: N.SendSMSRequest(
            to="+15555550100", user_id=s.owner.user_id, body="x", idempotency_key=s.unique()
        ),
    ),
    "notification.SendPushNotification": Baseline(
        "service",
        lambda s: N.SendPushNotificationRequest(
            user_id=s.owner.user_id,
            device_token="device-1",
            title="edge",
            body="x",
            data={"screen": "home"},
            idempotency_key=s.unique(),
        ),
    ),
    "notification.GetNotificationHistory": Baseline(
        "owner",
        lambda s: N.GetNotificationHistoryRequest(
            user_id=s.owner.user_id,
            channel=N.CHANNEL_EMAIL,
            status=N.NOTIFICATION_STATUS_QUEUED,
            page=1,
            limit=10,
        ),
    ),
    "notification.GetNotification": Baseline(
        "owner", lambda s: N.GetNotificationRequest(notification_id=s.notification_id)
    ),
    "analytics.TrackEvent": Baseline(
        "owner", lambda s: analytics.TrackEventRequest(name="edge_event", **_tracked(s))
    ),
    "analytics.TrackPageView": Baseline(
        "owner", lambda s: analytics.TrackPageViewRequest(**_PAGE, **_tracked(s))
    ),
    "analytics.TrackEvents": Baseline(
        "service", lambda s: analytics.TrackEventsRequest(events=[_event(s)])
    ),
    "analytics.IngestEvents": Baseline(
        "service", lambda s: [analytics.IngestEventsRequest(events=[_event(s)])]
    ),
    "analytics.GetAnalytics": Baseline(
        "service",  # reports need admin or analytics:read
        lambda s: analytics.GetAnalyticsRequest(
            start_time=_now(-3600),
            end_time=_now(3600),
            bucket=analytics.BUCKET_SIZE_HOUR,
            event_names=["edge_event"],
            user_id=s.owner.user_id,
            top_limit=10,
        ),
    ),
    "analytics.GetRealTimeAnalytics": Baseline(
        "service", lambda s: analytics.GetRealTimeAnalyticsRequest(window_minutes=5)
    ),
}
