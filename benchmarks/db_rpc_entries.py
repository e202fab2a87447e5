"""The database-backed RPCs ``db_rpcs.py`` measures: one ``DbRpc`` entry each.

Adding an RPC is adding one entry to ``ENTRIES``: which service answers it, its full method
name, the request (built from the ``Fixture`` every run prepares: a registered user with a
project), the reply type and what a right reply looks like. The harness does the rest: a real
client call before and after, h2load against the service and against a bare echo server in the
same run, the server's status counters, CPU per call, p99 at a fixed load and a profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoptal.analytics.v1 import analytics_pb2
from zoptal.auth.v1 import auth_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.project.v1 import project_pb2

__all__ = ["ENTRIES", "SERVICE_PORTS", "DbRpc", "Fixture"]

SERVICE_PORTS = {
    "auth": (4000, 9400),
    "project": (4001, 9401),
    "billing": (4003, 9403),
    "analytics": (4005, 9405),
}
"""Each service's gRPC and metrics port in the embedded platform (before its port offset)."""


@dataclass(frozen=True)
class Fixture:
    """What every run prepares through the platform's own RPCs before measuring anything."""

    user_id: str
    token: str
    """An access token of ``user_id`` (Auth's Login)."""
    project_id: str
    """A project ``user_id`` owns (a real CreateProject)."""
    admin_token: str
    """An access token of the bootstrap admin (creates projects for other owners)."""


Check = Callable[[Fixture, Any], str | None]
"""None when the reply is right, else what is wrong with it."""


@dataclass(frozen=True)
class DbRpc:
    name: str
    service: str
    """A key of ``SERVICE_PORTS``: the platform process that answers."""
    method: str
    """The full method name, ``/package.Service/Method``."""
    request: Callable[[Fixture], Any]
    reply: type[Any]
    check: Check
    goal: float | None = None
    """The issue's goal for calls/s against the bare echo server (None: recorded only)."""

    @property
    def label(self) -> str:
        return f"{self.service.capitalize()} {self.name}"

    def metadata(self, fixture: Fixture) -> dict[str, str]:
        return {"authorization": f"Bearer {fixture.token}"}


def _project_read(fixture: Fixture, reply: Any) -> str | None:
    if reply.project.id != fixture.project_id:
        return f"another project: {reply.project.id!r}"
    if reply.caller_role != project_pb2.PROJECT_ROLE_OWNER:
        return f"caller_role {reply.caller_role}, not OWNER"
    return None


def _project_list(fixture: Fixture, reply: Any) -> str | None:
    ids = [item.project.id for item in reply.projects]
    if fixture.project_id not in ids or reply.total_count < 1:
        return f"the user's project is missing: {ids} (total {reply.total_count})"
    return None


def _subscription(fixture: Fixture, reply: Any) -> str | None:
    return None if reply.subscription.plan.id else "a subscription without a plan"


def _limits(fixture: Fixture, reply: Any) -> str | None:
    return None if reply.plan_id and reply.current_usage >= 1 else f"odd answer: {reply}"


def _validated(fixture: Fixture, reply: Any) -> str | None:
    if not reply.valid or reply.user_id != fixture.user_id:
        return f"valid={reply.valid} user_id={reply.user_id!r} reason={reply.reason}"
    return None


def _tracked(fixture: Fixture, reply: Any) -> str | None:
    return None if reply.event_id else "no event id"


ENTRIES: tuple[DbRpc, ...] = (
    DbRpc("GetProject", "project", "/zoptal.project.v1.ProjectService/GetProject",
          lambda f: project_pb2.GetProjectRequest(project_id=f.project_id),
          project_pb2.GetProjectResponse, _project_read, goal=0.3),
    DbRpc("ListUserProjects", "project", "/zoptal.project.v1.ProjectService/ListUserProjects",
          lambda f: project_pb2.ListUserProjectsRequest(limit=10),
          project_pb2.ListUserProjectsResponse, _project_list, goal=0.3),
    DbRpc("GetUserSubscription", "billing",
          "/zoptal.billing.v1.BillingService/GetUserSubscription",
          lambda f: billing_pb2.GetUserSubscriptionRequest(user_id=f.user_id),
          billing_pb2.GetUserSubscriptionResponse, _subscription, goal=0.3),
    DbRpc("CheckSubscriptionLimits", "billing",
          "/zoptal.billing.v1.BillingService/CheckSubscriptionLimits",
          lambda f: billing_pb2.CheckSubscriptionLimitsRequest(
              user_id=f.user_id, metric=billing_pb2.METRIC_PROJECTS, quantity=1),
          billing_pb2.CheckSubscriptionLimitsResponse, _limits, goal=0.3),
    DbRpc("ValidateToken", "auth", "/zoptal.auth.v1.AuthService/ValidateToken",
          lambda f: auth_pb2.ValidateTokenRequest(token=f.token),
          auth_pb2.ValidateTokenResponse, _validated, goal=0.8),
    DbRpc("TrackEvent", "analytics", "/zoptal.analytics.v1.AnalyticsService/TrackEvent",
          lambda f: analytics_pb2.TrackEventRequest(name="bench.db_rpcs", user_id=f.user_id),
          analytics_pb2.TrackEventResponse, _tracked, goal=0.6),
)  # fmt: skip
