"""Redis stopped under the running platform, then started again (empty: no persistence)."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

from tests.faults.cluster import Cluster
from tests.faults.journey import PASSWORD, Clients
from tests.faults.probes import eventually, service_pids, timed
from tests.smtp import SmtpSink

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(150)]

DEADLINE_MS = 3_000


async def test_redis_outage_follows_fail_modes_degrades_real_time_and_recovers(
    clients: Clients, healthy_cluster: Cluster, smtp_sink: SmtpSink
) -> None:
    """Without Redis: Auth (RATE_LIMIT_FAIL_MODE=closed) refuses with UNAVAILABLE, the others
    (open) keep serving; GetRealTimeAnalytics says UNAVAILABLE naming Redis while ingest and
    aggregates work; an email sent meanwhile is kept. No process dies, and after Redis returns
    everything works again, the email included."""
    user = await clients.new_user()
    await clients.analytics.track_event(
        "fault.redis", user_id=user.user_id, metadata=clients.operator
    )
    baseline = await timed(clients.analytics.get_real_time_analytics(5, metadata=clients.operator))
    assert baseline.code == grpc.StatusCode.OK, baseline
    pids = service_pids(healthy_cluster)

    healthy_cluster.redis.stop()
    login = await timed(clients.auth.login(user.email, PASSWORD, timeout_ms=DEADLINE_MS))
    listing = await timed(clients.project.list_user_projects(user.user_id, metadata=user.metadata))
    create = await timed(
        clients.project.create_project(
            "made without redis", request_id=uuid.uuid4().hex, metadata=user.metadata
        )
    )
    subscription = await timed(
        clients.billing.get_user_subscription(user.user_id, metadata=user.metadata)
    )
    tracked = await timed(
        clients.analytics.track_event(
            "fault.redis", user_id=user.user_id, metadata=clients.operator
        )
    )
    real_time = await timed(
        clients.analytics.get_real_time_analytics(
            5, metadata=clients.operator, timeout_ms=DEADLINE_MS
        )
    )
    recipient = f"redis-outage-{uuid.uuid4().hex[:8]}@example.com"
    sent = await timed(
        clients.notification.send_email(
            recipient,
            "Sent while Redis was down",
            "kept in the outbox",
            idempotency_key=uuid.uuid4().hex,
            user_id=user.user_id,
            metadata=clients.operator,
        )
    )
    await asyncio.sleep(1.0)  # a second of outage for background loops to trip over
    alive_during = {label: proc.alive() for label, proc in healthy_cluster.processes.items()}
    healthy_cluster.redis.start()

    assert login.code == grpc.StatusCode.UNAVAILABLE, login
    assert "rate limiter" in login.detail, login
    assert login.seconds < DEADLINE_MS / 1000, login
    served = {
        "ListUserProjects": listing,
        "CreateProject": create,
        "GetUserSubscription": subscription,
        "TrackEvent": tracked,
        "SendEmail": sent,
    }
    for name, outcome in served.items():
        assert outcome.code == grpc.StatusCode.OK, (name, outcome)
    assert real_time.code == grpc.StatusCode.UNAVAILABLE, real_time
    assert "Redis" in real_time.detail, real_time
    assert real_time.seconds < DEADLINE_MS / 1000, real_time
    assert all(alive_during.values()), alive_during

    async def recovered() -> bool:
        relogin = await timed(clients.auth.login(user.email, PASSWORD, timeout_ms=DEADLINE_MS))
        live = await timed(
            clients.analytics.get_real_time_analytics(
                5, metadata=clients.operator, timeout_ms=1_000
            )
        )
        return relogin.code == live.code == grpc.StatusCode.OK

    await eventually(recovered, within=30, what="Login and real-time analytics to work again")

    async def real_time_counts_again() -> bool:
        await clients.analytics.track_event(
            "fault.redis.after", user_id=user.user_id, metadata=clients.operator
        )
        reply = await clients.analytics.get_real_time_analytics(5, metadata=clients.operator)
        return any(top.name == "fault.redis.after" for top in reply.top_events)

    await eventually(real_time_counts_again, within=20, what="real-time counts to resume")

    def delivered() -> bool:
        return any(recipient.encode() in message for message in smtp_sink.messages)

    started = time.monotonic()
    while not delivered():
        assert time.monotonic() - started < 60, "the email sent during the outage was lost"
        await asyncio.sleep(0.2)
    assert sum(recipient.encode() in message for message in smtp_sink.messages) == 1
    assert service_pids(healthy_cluster) == pids  # nothing crashed, nothing was restarted


async def test_the_first_login_after_redis_returns_is_admitted(
    clients: Clients, healthy_cluster: Cluster
) -> None:
    """Redis stops and starts again while Auth (RATE_LIMIT_FAIL_MODE=closed) is idle; the next
    Login, made once Redis accepts connections, succeeds."""
    user = await clients.new_user(plan="free")
    warm = await timed(clients.auth.login(user.email, PASSWORD, timeout_ms=DEADLINE_MS))
    assert warm.code == grpc.StatusCode.OK, warm  # the limiter's connection is open and fresh
    healthy_cluster.redis.stop()
    healthy_cluster.redis.start()  # returns once Redis accepts connections
    first = await timed(clients.auth.login(user.email, PASSWORD, timeout_ms=DEADLINE_MS))
    assert first.code == grpc.StatusCode.OK, first
