"""Well-formed requests aimed at one user's things, RPC by RPC (``service.Method`` keys).

Cross-user tests send them from the wrong caller; the NUL-character tests spoil one string field
at a time. Keeping them here means one list to extend when an RPC is added.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from zoptal.analytics.v1 import analytics_pb2 as analytics
from zoptal.auth.v1 import auth_pb2 as auth
from zoptal.billing.v1 import billing_pb2 as billing
from zoptal.notification.v1 import notification_pb2 as notification
from zoptal.project.v1 import project_pb2 as project

__all__ = ["CASES", "Build", "Victim"]


@dataclass(frozen=True)
class Victim:
    user_id: str
    spare_token: str  # a second login's access token, for RevokeToken attempts
    project_id: str
    notification_id: str


Build = Callable[[Victim], Any]


def _hours_from_now(hours: int) -> Timestamp:
    return Timestamp(seconds=int(time.time()) + hours * 3600)


P = project
CASES: dict[str, Build] = {
    "auth.GetUser": lambda v: auth.GetUserRequest(user_id=v.user_id),
    "auth.GetUserPermissions": lambda v: auth.GetUserPermissionsRequest(user_id=v.user_id),
    "auth.RevokeToken": lambda v: auth.RevokeTokenRequest(token=v.spare_token),
    "project.GetProject": lambda v: P.GetProjectRequest(project_id=v.project_id),
    "project.ListUserProjects": lambda v: P.ListUserProjectsRequest(user_id=v.user_id),
    "project.CreateProject": lambda v: P.CreateProjectRequest(
        name="planted by bob", owner_id=v.user_id
    ),
    "project.UpdateProject": lambda v: P.UpdateProjectRequest(
        project_id=v.project_id, version=1, name="pwned"
    ),
    "project.DeleteProject": lambda v: P.DeleteProjectRequest(project_id=v.project_id, version=1),
    "project.CheckProjectAccess": lambda v: P.CheckProjectAccessRequest(
        user_id=v.user_id, project_id=v.project_id, action=P.PROJECT_ACTION_READ
    ),
    "project.AddProjectMember": lambda v: P.AddProjectMemberRequest(
        project_id=v.project_id, user_id=v.user_id, role=P.PROJECT_ROLE_VIEWER
    ),
    "project.RemoveProjectMember": lambda v: P.RemoveProjectMemberRequest(
        project_id=v.project_id, user_id=v.user_id
    ),
    "project.ListProjectMembers": lambda v: P.ListProjectMembersRequest(project_id=v.project_id),
    "billing.GetUserSubscription": lambda v: billing.GetUserSubscriptionRequest(user_id=v.user_id),
    "billing.CheckSubscriptionLimits": lambda v: billing.CheckSubscriptionLimitsRequest(
        user_id=v.user_id, metric=billing.METRIC_PROJECTS, quantity=1
    ),
    "billing.RecordUsage": lambda v: billing.RecordUsageRequest(
        user_id=v.user_id, metric=billing.METRIC_PROJECTS, quantity=100, idempotency_key="bob-1"
    ),
    "billing.ChangeSubscription": lambda v: billing.ChangeSubscriptionRequest(
        user_id=v.user_id, plan_id="pro"
    ),
    "notification.SendEmail": lambda v: notification.SendEmailRequest(
        to="dave@example.com",
        user_id=v.user_id,
        subject="phish",
        body_text="x",
        idempotency_key="bob-1",
    ),
    "notification.SendSMS": lambda v: notification.SendSMSRequest(
        to="+15555550100", user_id=v.user_id, body="phish", idempotency_key="bob-2"
    ),
    "notification.SendPushNotification": lambda v: notification.SendPushNotificationRequest(
        user_id=v.user_id, device_token="device", title="phish", body="x", idempotency_key="bob-3"
    ),
    "notification.GetNotificationHistory": lambda v: notification.GetNotificationHistoryRequest(
        user_id=v.user_id
    ),
    "notification.GetNotification": lambda v: notification.GetNotificationRequest(
        notification_id=v.notification_id
    ),
    "analytics.TrackEvent": lambda v: analytics.TrackEventRequest(
        user_id=v.user_id, name="forged_event"
    ),
    "analytics.TrackPageView": lambda v: analytics.TrackPageViewRequest(
        user_id=v.user_id, url="https://example.com/forged"
    ),
    "analytics.TrackEvents": lambda v: analytics.TrackEventsRequest(
        events=[analytics.Event(user_id=v.user_id, name="forged_event")]
    ),
    "analytics.IngestEvents": lambda v: [
        analytics.IngestEventsRequest(
            events=[analytics.Event(user_id=v.user_id, name="forged_event")]
        )
    ],
    "analytics.GetAnalytics": lambda v: analytics.GetAnalyticsRequest(
        user_id=v.user_id,
        start_time=_hours_from_now(-1),
        end_time=_hours_from_now(1),
        bucket=analytics.BUCKET_SIZE_HOUR,
    ),
}
