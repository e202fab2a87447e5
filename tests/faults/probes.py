"""One representative database-backed call per service, and helpers to time and poll them."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from zoptal.analytics.v1 import analytics_pb2

from tests.faults.cluster import Cluster
from tests.faults.journey import PASSWORD, Clients, User, rpc_code

__all__ = ["Outcome", "eventually", "probes_for", "timed"]

Probe = Callable[[int], Awaitable[object]]
"""A call taking a deadline in milliseconds."""


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    seconds: float
    detail: str


async def timed(call: Awaitable[object]) -> Outcome:
    """Await ``call``; its status (OK or the failure's) and how long it took."""
    started = time.monotonic()
    try:
        await call
    except Exception as error:
        code = rpc_code(error)
        if code is None:
            raise
        return Outcome(code, time.monotonic() - started, str(error)[:300])
    return Outcome(grpc.StatusCode.OK, time.monotonic() - started, "")


def probes_for(clients: Clients, user: User) -> dict[str, Probe]:
    """A call that needs each service's database (reads and writes, users and services)."""
    now = dt.datetime.now(dt.UTC)

    def login(ms: int) -> Awaitable[object]:
        return clients.auth.login(user.email, PASSWORD, timeout_ms=ms)

    def list_projects(ms: int) -> Awaitable[object]:
        return clients.project.list_user_projects(
            user.user_id, metadata=user.metadata, timeout_ms=ms
        )

    def create_project(ms: int) -> Awaitable[object]:
        return clients.project.create_project(
            f"probe {uuid.uuid4().hex[:8]}",
            request_id=uuid.uuid4().hex,
            metadata=user.metadata,
            timeout_ms=ms,
        )

    def subscription(ms: int) -> Awaitable[object]:
        return clients.billing.get_user_subscription(
            user.user_id, metadata=user.metadata, timeout_ms=ms
        )

    def history(ms: int) -> Awaitable[object]:
        return clients.notification.get_notification_history(
            user.user_id, metadata=clients.operator, timeout_ms=ms
        )

    def track(ms: int) -> Awaitable[object]:
        return clients.analytics.track_event(
            "fault.probe", user_id=user.user_id, metadata=clients.operator, timeout_ms=ms
        )

    def aggregate(ms: int) -> Awaitable[object]:
        return clients.analytics.get_analytics(
            now - dt.timedelta(hours=1),
            now + dt.timedelta(hours=1),
            bucket=analytics_pb2.BUCKET_SIZE_HOUR,
            metadata=clients.operator,
            timeout_ms=ms,
        )

    return {
        "auth.Login": login,
        "project.ListUserProjects": list_projects,
        "project.CreateProject": create_project,
        "billing.GetUserSubscription": subscription,
        "notification.GetNotificationHistory": history,
        "analytics.TrackEvent": track,
        "analytics.GetAnalytics": aggregate,
    }


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, within: float, what: str, every: float = 0.2
) -> float:
    """Poll ``probe`` until it is true; the seconds it took (AssertionError after ``within``)."""
    started = time.monotonic()
    while not await probe():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started


def service_pids(cluster: Cluster) -> dict[str, int]:
    return {label: proc.pid for label, proc in cluster.processes.items() if proc.alive()}
