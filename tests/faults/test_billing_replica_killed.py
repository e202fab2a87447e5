"""One of two Billing replicas SIGKILLed during a stream of CreateProject calls."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

import grpc
import pytest

from tests.faults.cluster import Cluster
from tests.faults.journey import Clients, User, rpc_code
from tests.faults.ledger import read_ledger, wait_for_outbox_drained

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]

CALLS = 300
CONCURRENCY = 8
KILL_AFTER = 60
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
    """SIGKILL billing-a a fifth into 300 creates: >= 99.9 % succeed after the client's
    resends, and Billing's usage equals exactly the projects that exist, each counted once."""
    users = [await clients.new_user() for _ in range(4)]
    stream = Stream()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(CALLS):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            await _create(clients, users[index % len(users)], index, stream)

    async def killer() -> None:
        await stream.kill_point.wait()
        healthy_cluster["billing-a"].kill()
        stream.killed.set()

    await asyncio.wait_for(
        asyncio.gather(killer(), *(worker() for _ in range(CONCURRENCY))), timeout=150
    )
    assert stream.killed.is_set()
    assert not healthy_cluster["billing-a"].alive()
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
