"""The journeys: what a user (or an operator) does, across all five services.

``browse``   read projects, subscription and plans; a page view        (Project, Billing, Analytics)
``project``  check the limit, create a project, read it, add a member, list members, check
             access, delete it                                          (Billing, Project)
``events``   two events and a page view                                 (Analytics)
``session``  log in again, validate the new token, refresh it, revoke the old session (Auth)
``operator`` aggregate and real-time analytics, an email to the user, the user's history
             (Analytics, Notification; only with an operator's service credentials)

Every journey first makes sure its user is registered and holds a fresh access token
(RegisterUser, Login, RefreshToken, recorded like any other call). The first failing call ends
the journey as failed; a project it created is deleted all the same. Plans are never changed:
generated users stay on the free plan and pay for nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from meshcore.errors import MeshError
from meshcore.service_token import ServiceTokenSource
from zoptal.analytics.v1 import analytics_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.clients.errors import ApiError
from zoptal.project.v1 import project_pb2
from zoptal_cli.endpoints import Clients

from zoptal_loadgen.stats import Recorder
from zoptal_loadgen.users import PoolUser, UserPool

__all__ = ["JOURNEYS", "Journeys", "failure_label"]

T = TypeVar("T")
APP_URL = "https://app.zoptal.example"
"""Page views are of the web app's pages (absolute URLs, as a browser reports them)."""
JOURNEYS = ("browse", "project", "events", "session", "operator")


def failure_label(error: BaseException) -> str:
    """``CODE`` or ``CODE/REASON`` for the report (``UNAVAILABLE``, ``RESOURCE_EXHAUSTED/...``)."""
    if isinstance(error, ApiError):
        code, reason = error.code().name, error.reason
    elif isinstance(error, MeshError):
        code, reason = error.code.name, error.reason
    else:
        return f"CLIENT/{type(error).__name__}"
    return code if not reason or reason == code else f"{code}/{reason}"


def _message(error: BaseException) -> str:
    """The status message (never a token: the servers put none in their messages)."""
    text = error.details() if isinstance(error, ApiError) else str(error)
    return (text or "")[:200]


def _seconds(stamp: Any) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


class Journeys:
    def __init__(
        self,
        clients: Clients,
        pool: UserPool,
        recorder: Recorder,
        *,
        operator: ServiceTokenSource | None = None,
    ) -> None:
        self.clients = clients
        self.pool = pool
        self.recorder = recorder
        """Swapped by the runner at each reporting interval."""
        self.operator = operator

    async def call(self, rpc: str, step: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await step
        except Exception as error:
            label, message = failure_label(error), _message(error)
            self.recorder.call(rpc, time.perf_counter() - started, label, message)
            raise
        self.recorder.call(rpc, time.perf_counter() - started)
        return result

    async def run(self, name: str) -> None:
        """Run journey ``name`` once and record whether it went through; never raises."""
        journey: Callable[[PoolUser], Awaitable[None]] = getattr(self, f"_{name}")
        user = self.pool.pick()
        try:
            async with user.lock:
                await self._signed_in(user)
                await journey(user)
        except Exception:
            self.recorder.journey(name, ok=False)  # each failed call is recorded already
            return
        self.recorder.journey(name, ok=True)

    async def _signed_in(self, user: PoolUser) -> None:
        auth = self.clients.auth
        if not user.registered:
            async with self.pool.password_operations:
                reply = await self.call(
                    "RegisterUser", auth.register_user(user.email, user.password, "Load Gen")
                )
            user.user_id, user.registered = reply.user.id, True
        if not user.needs_login():
            return
        if user.refresh_token:
            refreshed = await self.call("RefreshToken", auth.refresh_token(user.refresh_token))
            user.access_token, user.refresh_token = refreshed.access_token, refreshed.refresh_token
            user.access_expires_at = _seconds(refreshed.access_token_expires_at)
            return
        await self._login(user)

    async def _login(self, user: PoolUser) -> None:
        async with self.pool.password_operations:
            login = await self.call("Login", self.clients.auth.login(user.email, user.password))
        user.access_token, user.refresh_token = login.access_token, login.refresh_token
        user.access_expires_at = _seconds(login.access_token_expires_at)

    async def _browse(self, user: PoolUser) -> None:
        c, md = self.clients, user.metadata
        await self.call("ListUserProjects", c.project.list_user_projects("", 1, 20, metadata=md))
        await self.call(
            "GetUserSubscription", c.billing.get_user_subscription(user.user_id, metadata=md)
        )
        await self.call("GetSubscriptionPlans", c.billing.get_subscription_plans(metadata=md))
        await self.call(
            "TrackPageView",
            c.analytics.track_page_view(
                f"{APP_URL}/dashboard",
                user_id=user.user_id,
                title="Dashboard",
                event_id=uuid.uuid4().hex,
                metadata=md,
            ),
        )

    async def _project(self, user: PoolUser) -> None:
        c, md = self.clients, user.metadata
        limit = await self.call(
            "CheckSubscriptionLimits",
            c.billing.check_subscription_limits(
                user.user_id, billing_pb2.METRIC_PROJECTS, 1, metadata=md
            ),
        )
        if not limit.allowed:
            # A deleted project's usage is released asynchronously; wait for it, do not fail.
            self.recorder.skipped["plan_limit"] += 1
            return
        created = await self.call(
            "CreateProject",
            c.project.create_project(
                f"loadgen {uuid.uuid4().hex[:8]}",
                "made by zoptal-loadgen",
                request_id=uuid.uuid4().hex,
                metadata=md,
            ),
        )
        project_id = created.project.id
        user.projects.add(project_id)
        try:
            await self.call("GetProject", c.project.get_project(project_id, metadata=md))
            member = self.pool.other_registered(user)
            if member is not None:
                await self.call(
                    "AddProjectMember",
                    c.project.add_project_member(
                        project_id, member.user_id, project_pb2.PROJECT_ROLE_VIEWER, metadata=md
                    ),
                )
            await self.call(
                "ListProjectMembers", c.project.list_project_members(project_id, metadata=md)
            )
            await self.call(
                "CheckProjectAccess",
                c.project.check_project_access(
                    user.user_id, project_id, project_pb2.PROJECT_ACTION_UPDATE, metadata=md
                ),
            )
        finally:
            await self._delete(user, project_id)

    async def _delete(self, user: PoolUser, project_id: str) -> None:
        await self.call(
            "DeleteProject", self.clients.project.delete_project(project_id, metadata=user.metadata)
        )
        user.projects.discard(project_id)

    async def _events(self, user: PoolUser) -> None:
        c, md = self.clients, user.metadata
        for name in ("feature.used", "search.performed"):
            await self.call(
                "TrackEvent",
                c.analytics.track_event(
                    name,
                    user_id=user.user_id,
                    properties={"source": "loadgen"},
                    event_id=uuid.uuid4().hex,
                    metadata=md,
                ),
            )
        await self.call(
            "TrackPageView",
            c.analytics.track_page_view(
                f"{APP_URL}/projects", user_id=user.user_id, event_id=uuid.uuid4().hex, metadata=md
            ),
        )

    async def _session(self, user: PoolUser) -> None:
        auth = self.clients.auth
        old_refresh = user.refresh_token
        await self._login(user)
        first_access = user.access_token
        await self.call("ValidateToken", auth.validate_token(first_access, metadata=user.metadata))
        refreshed = await self.call("RefreshToken", auth.refresh_token(user.refresh_token))
        user.access_token, user.refresh_token = refreshed.access_token, refreshed.refresh_token
        user.access_expires_at = _seconds(refreshed.access_token_expires_at)
        # Sign out of what is no longer used: the replaced access token, and the previous login.
        await self.call("RevokeToken", auth.revoke_token(first_access, metadata=user.metadata))
        if old_refresh:
            await self.call("RevokeToken", auth.revoke_token(old_refresh, metadata=user.metadata))

    async def _operator(self, user: PoolUser) -> None:
        c = self.clients
        token = self.operator() if self.operator is not None else None
        operator_md = (("x-service-token", token or ""),)
        now = dt.datetime.now(dt.UTC)
        await self.call(
            "GetRealTimeAnalytics", c.analytics.get_real_time_analytics(5, metadata=operator_md)
        )
        await self.call(
            "GetAnalytics",
            c.analytics.get_analytics(
                now - dt.timedelta(hours=1),
                now,
                bucket=analytics_pb2.BUCKET_SIZE_MINUTE,
                user_id=user.user_id,
                top_limit=5,
                metadata=operator_md,
            ),
        )
        await self.call(
            "SendEmail",
            c.notification.send_email(
                user.email,
                "Your weekly summary",
                "Sent by zoptal-loadgen.",
                user_id=user.user_id,
                idempotency_key=uuid.uuid4().hex,
                metadata=operator_md,
            ),
        )
        await self.call(
            "GetNotificationHistory",
            c.notification.get_notification_history(user.user_id, 1, 10, metadata=user.metadata),
        )

    async def clean_up(self) -> None:
        """Delete the projects journeys left (cut short) and sign every user out. A failure is
        recorded by ``call`` and does not stop the other users' clean-up."""
        for user in self.pool.users:
            async with user.lock:
                with contextlib.suppress(Exception):
                    await self._sign_out(user)

    async def _sign_out(self, user: PoolUser) -> None:
        for project_id in sorted(user.projects):
            await self._delete(user, project_id)
        if user.refresh_token:
            await self.call(
                "RevokeToken",
                self.clients.auth.revoke_token(user.refresh_token, metadata=user.metadata),
            )
            user.refresh_token = user.access_token = ""
