"""One of two Billing replicas SIGKILLed during a stream of CreateProject calls."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import grpc
import pytest

from tests.faults.cluster import Cluster
from tests.faults.journey import Clients, User, rpc_code
from tests.faults.ledger import read_ledger, wait_for_outbox_drained
from tests.faults.probes import eventually
from tests.smtp import SmtpSink

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(240)]

CALLS = 200
CONCURRENCY = 8
KILL_AFTER = 40
CLIENT_ATTEMPTS = 4
"""CreateProject is idempotent by ``request_id`` (project.proto), so a client may resend it
with the same key after UNAVAILABLE; meshcore does not (the proto marks it non-idempotent)."""


@dataclass
class Stream:
    first_attempt: Counter[str] = field(default_factory=Counter)
    final: Counter[str] = field(default_factory=Counter)
    created: dict[str, tuple[str, str]] = field(default_factory=dict)
    """request id -> (owner id, project id) for every acknowledged create."""
    done: int = 0
    kill_point: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once ``KILL_AFTER`` creates have finished: the moment to kill a replica."""
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    usage_recorded_by_killed: int = 0
    """RecordUsage calls billing-a answered OK during this stream, read just before the kill."""


async def _create(clients: Clients, user: User, index: int, stream: Stream) -> None:
    request_id = f"fault-{uuid.uuid4().hex}"
    outcome = "?"
    for attempt in range(CLIENT_ATTEMPTS):
        try:
            reply = await clients.project.create_project(
                f"stream project {index}",
                request_id=request_id,
                metadata=user.metadata,
                timeout_ms=8_000,
            )
        except Exception as error:  # a status, or a breaker refusal: classify, maybe resend
            code = rpc_code(error)
            outcome = code.name if code is not None else type(error).__name__
            if attempt == 0:
                stream.first_attempt[outcome] += 1
            if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED):
                break
            await asyncio.sleep(0.1 * (attempt + 1))
            continue
        outcome = "OK"
        if attempt == 0:
            stream.first_attempt["OK"] += 1
        stream.created[request_id] = (user.user_id, reply.project.id)
        break
    stream.final[outcome] += 1
    stream.done += 1
    if stream.done >= KILL_AFTER:
        stream.kill_point.set()


async def test_killing_one_billing_replica_loses_no_create_and_counts_none_twice(
    clients: Clients, healthy_cluster: Cluster
) -> None:
    """SIGKILL billing-a a fifth into 200 creates: >= 99.9 % succeed after the client's
    resends, and Billing's usage equals exactly the projects that exist, each counted once."""
    users = [await clients.new_user() for _ in range(4)]
    stream = Stream()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(CALLS):
        queue.put_nowait(index)
    billing_a = healthy_cluster["billing-a"]
    recorded_before = await asyncio.to_thread(billing_a.answered_ok, "RecordUsage")

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            await _create(clients, users[index % len(users)], index, stream)

    async def killer() -> None:
        await stream.kill_point.wait()
        recorded = await asyncio.to_thread(billing_a.answered_ok, "RecordUsage")
        stream.usage_recorded_by_killed = recorded - recorded_before
        billing_a.kill()
        stream.killed.set()

    await asyncio.wait_for(
        asyncio.gather(killer(), *(worker() for _ in range(CONCURRENCY))), timeout=150
    )
    assert stream.killed.is_set()
    assert not billing_a.alive()
    # The replica killed was carrying part of this stream's writes, not idling beside its twin.
    assert stream.usage_recorded_by_killed > 0, (stream.final, stream.first_attempt)
    assert healthy_cluster["billing-b"].alive(), healthy_cluster["billing-b"].tail()

    successes = stream.final["OK"]
    assert successes / CALLS >= 0.999, (stream.final, stream.first_attempt)

    # Everything Project queued (compensations of unknown outcomes) reaches the survivor.
    await wait_for_outbox_drained(healthy_cluster.postgres)
    ledger = await read_ledger(healthy_cluster.postgres, [u.user_id for u in users])
    acknowledged = {project_id for _, project_id in stream.created.values()}
    existing = set().union(*ledger.active_projects.values())
    assert ledger.pending_projects == 0
    assert ledger.duplicate_keys == []
    # Every acknowledged create exists, and nothing exists that was not acknowledged.
    assert acknowledged == existing
    # Billing counted each existing project exactly once, and nothing else.
    assert {p: n for p, n in ledger.net_by_project.items() if n != 0} == dict.fromkeys(existing, 1)
    for user in users:
        assert ledger.totals.get(user.user_id, 0) == len(ledger.active_projects[user.user_id])


FREE_USERS = 8
FREE_PLAN_PROJECTS = 3


async def _create_until_refused(clients: Clients, user: User, index: int) -> str:
    """One create with client resends on UNAVAILABLE; its final status name."""
    request_id = f"limit-{uuid.uuid4().hex}"
    for attempt in range(CLIENT_ATTEMPTS):
        try:
            await clients.project.create_project(
                f"limit project {index}",
                request_id=request_id,
                metadata=user.metadata,
                timeout_ms=8_000,
            )
        except Exception as error:
            code = rpc_code(error)
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED):
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            return code.name if code is not None else type(error).__name__
        return "OK"
    return "UNAVAILABLE"


async def test_killing_a_billing_replica_keeps_plan_limits_exact_and_emails_once(
    clients: Clients, healthy_cluster: Cluster, smtp_sink: SmtpSink
) -> None:
    """Free-plan users (3 projects) each send 4 concurrent creates while billing-a is
    SIGKILLed: exactly 3 succeed and 1 is RESOURCE_EXHAUSTED per user, and every threshold
    notice Billing queued reaches the SMTP server exactly once."""
    users = [await clients.new_user(plan="free") for _ in range(FREE_USERS)]
    finished = asyncio.Event()
    results: list[tuple[str, str]] = []

    async def create(user: User, index: int) -> None:
        results.append((user.user_id, await _create_until_refused(clients, user, index)))
        if len(results) >= FREE_USERS:
            finished.set()

    async def killer() -> None:
        await finished.wait()
        healthy_cluster["billing-a"].kill()

    await asyncio.wait_for(
        asyncio.gather(
            killer(),
            *(create(u, i) for u in users for i in range(FREE_PLAN_PROJECTS + 1)),
        ),
        timeout=120,
    )
    assert not healthy_cluster["billing-a"].alive()
    by_user = {u.user_id: Counter(code for uid, code in results if uid == u.user_id) for u in users}
    expected = Counter({"OK": FREE_PLAN_PROJECTS, "RESOURCE_EXHAUSTED": 1})
    assert all(outcomes == expected for outcomes in by_user.values()), by_user

    await wait_for_outbox_drained(healthy_cluster.postgres)
    ledger = await read_ledger(healthy_cluster.postgres, [u.user_id for u in users])
    assert ledger.duplicate_keys == []
    assert all(len(p) == FREE_PLAN_PROJECTS for p in ledger.active_projects.values())
    assert all(ledger.totals[u.user_id] == FREE_PLAN_PROJECTS for u in users), ledger.totals

    notices = await _threshold_notices(healthy_cluster, [u.user_id for u in users])
    assert notices, "crossing 80 % and 100 % of the plan queued no notice"

    def emails_to(user: User) -> int:
        return sum(user.email.encode() in message for message in smtp_sink.messages)

    async def all_delivered() -> bool:
        return all(emails_to(u) >= notices.get(u.user_id, 0) for u in users)

    # A notice leased by the killed replica waits for its lease (60 s in Billing) to run out
    # before the survivor sends it: late, never lost, never twice.
    await eventually(all_delivered, within=100, what="every threshold email", every=0.5)
    await asyncio.sleep(1.0)  # a duplicate would arrive right behind the first delivery
    assert {u.user_id: emails_to(u) for u in users} == {
        u.user_id: notices.get(u.user_id, 0) for u in users
    }


async def _threshold_notices(cluster: Cluster, user_ids: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(cluster.postgres.dsn("billing"))
    try:
        rows = await connection.fetch(
            "SELECT user_id, COUNT(*) AS n FROM threshold_notices "
            "WHERE user_id = ANY($1::text[]) GROUP BY user_id",
            user_ids,
        )
    finally:
        await connection.close()
    return {row["user_id"]: int(row["n"]) for row in rows}
