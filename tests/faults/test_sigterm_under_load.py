"""SIGTERM to each service while calls are in flight: NOT_SERVING first, no in-flight failure."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshcore.resilience import RetryPolicy

from tests.faults.cluster import Cluster
from tests.faults.journey import PASSWORD, Clients, User, open_clients, rpc_code
from tests.faults.ledger import read_ledger, wait_for_outbox_drained

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]

CONCURRENCY = 6
LOAD_BEFORE_SIGNAL = 1.0
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Call:
    started: float
    ended: float
    code: grpc.StatusCode | None
    detail: str
    acknowledged: str = ""
    """The id an OK reply handed out (an event id, a notification id), if any."""


@dataclass
class Load:
    calls: list[Call] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def _call_for(label: str, clients: Clients, user: User) -> Callable[[], Awaitable[object]]:
    """A call that does real work in the service about to be stopped."""
    if label == "auth":
        return lambda: clients.auth.login(user.email, PASSWORD)
    if label == "project":
        return lambda: clients.project.create_project(
            f"sigterm {uuid.uuid4().hex[:10]}", request_id=uuid.uuid4().hex, metadata=user.metadata
        )
    if label.startswith("billing"):
        return lambda: clients.billing.get_user_subscription(user.user_id, metadata=user.metadata)
    if label == "notification":
        return lambda: clients.notification.send_email(
            f"sigterm-{uuid.uuid4().hex[:8]}@example.com",
            "SIGTERM load",
            "drain me",
            idempotency_key=uuid.uuid4().hex,
            metadata=clients.operator,
        )
    return lambda: clients.analytics.track_event(
        "fault.sigterm", user_id=user.user_id, metadata=clients.operator
    )


async def _drive(call: Callable[[], Awaitable[object]], load: Load) -> None:
    while not load.stop.is_set():
        started = time.monotonic()
        try:
            reply = await call()
        except Exception as error:
            load.calls.append(Call(started, time.monotonic(), rpc_code(error), str(error)[:200]))
            await asyncio.sleep(0.05)  # a refused caller backs off a little, as clients do
            continue
        acknowledged = getattr(reply, "event_id", "") or getattr(reply, "notification_id", "")
        load.calls.append(Call(started, time.monotonic(), grpc.StatusCode.OK, "", acknowledged))


async def _watch_health(address: str, seen: list[tuple[float, int]]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="")
        )
        try:
            async for reply in stream:
                seen.append((time.monotonic(), int(reply.status)))
        except grpc.aio.AioRpcError:
            return  # the server went away after telling us; the statuses seen are what count


DURABLE_ROWS = {"analytics": ("events", "event_id"), "notification": ("notifications", "id")}


async def _stored(cluster: Cluster, label: str, ids: set[str]) -> set[str]:
    table, column = DURABLE_ROWS[label]
    connection = await asyncpg.connect(cluster.postgres.dsn(label))
    try:
        rows = await connection.fetch(
            f"SELECT {column} AS id FROM {table} WHERE {column} = ANY($1::text[])",  # noqa: S608
            list(ids),
        )
    finally:
        await connection.close()
    return {row["id"] for row in rows}


@pytest.mark.parametrize("label", ["auth", "project", "billing-a", "notification", "analytics"])
async def test_sigterm_under_load_drains_in_flight_calls_after_going_not_serving(
    label: str, healthy_cluster: Cluster, clients: Clients
) -> None:
    """Load on one service, SIGTERM it: its health Watch reports NOT_SERVING before any call
    is refused, every call started before the signal succeeds, refusals are UNAVAILABLE
    only (none for Billing, whose second replica takes over), and the process exits 0.
    Writes acknowledged by Analytics and Notification are all in their databases afterwards;
    for Project, Billing's usage matches the projects that exist."""
    user = await clients.new_user()
    target = healthy_cluster[label]
    # No client retries: a failed in-flight call must show, not be hidden by a resend.
    async with open_clients(healthy_cluster, retry=RetryPolicy(max_retries=0)) as plain:
        call = _call_for(label, plain, user)
        # Warm up at full concurrency: channels connected, caches filled and connection pools
        # grown, so the measured calls see a service in its steady state.
        for _ in range(2):
            await asyncio.gather(*(call() for _ in range(CONCURRENCY)), return_exceptions=True)
        await call()
        seen: list[tuple[float, int]] = []
        watcher = asyncio.ensure_future(_watch_health(target.address, seen))
        load = Load()
        drivers = [asyncio.ensure_future(_drive(call, load)) for _ in range(CONCURRENCY)]
        await asyncio.sleep(LOAD_BEFORE_SIGNAL)
        signalled_at = time.monotonic()
        target.terminate()
        exit_code = await asyncio.to_thread(target.wait_exit, 30.0)
        await asyncio.sleep(0.5)  # callers notice the exit
        load.stop.set()
        await asyncio.gather(*drivers)
        await asyncio.wait_for(watcher, 10)

    not_serving_at = next((at for at, status in seen if status == NOT_SERVING), None)
    in_flight = [c for c in load.calls if c.started < signalled_at]
    spanning = [c for c in in_flight if c.ended > signalled_at]
    failures = [c for c in load.calls if c.code != grpc.StatusCode.OK]

    assert exit_code == 0, target.tail()
    assert not_serving_at is not None, seen
    assert spanning, "no call was in flight when the signal was sent: the test proved nothing"
    assert [c for c in in_flight if c.code != grpc.StatusCode.OK] == []
    assert {c.code for c in failures} <= {grpc.StatusCode.UNAVAILABLE}, failures[:5]
    if failures:
        assert not_serving_at < min(c.ended for c in failures), (not_serving_at, failures[:3])
    if label.startswith("billing"):
        assert failures == [], failures[:5]  # the other replica served every call
    if label in DURABLE_ROWS:
        # Every acknowledged write is in the database after the stop: nothing lived in memory.
        acknowledged = {c.acknowledged for c in load.calls if c.acknowledged}
        assert acknowledged
        missing = acknowledged - await _stored(healthy_cluster, label, acknowledged)
        assert missing == set(), f"{len(missing)} acknowledged writes lost"
    if label == "project":
        # Creates cut short by the stop were answered or undone: usage matches what exists.
        target.restart()
        await wait_for_outbox_drained(healthy_cluster.postgres)
        ledger = await read_ledger(healthy_cluster.postgres, [user.user_id])
        existing = ledger.active_projects[user.user_id]
        assert ledger.pending_projects == 0
        assert ledger.duplicate_keys == []
        assert {p: n for p, n in ledger.net_by_project.items() if n} == dict.fromkeys(existing, 1)
        assert ledger.totals.get(user.user_id, 0) == len(existing)
