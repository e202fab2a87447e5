"""The usage outbox: ordered delivery, backoff while Billing is down, the stale sweeper."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from meshcore.db import Database
from meshcore.errors import Unavailable
from meshcore.statements import Statements
from meshcore.testing import FakeClock
from sqlalchemy import func, select
from zoptal_project.models import ProjectRow, UsageOutboxRow
from zoptal_project.ports import BilledMetric
from zoptal_project.repository import ProjectCreation, ProjectRepository
from zoptal_project.usage_outbox import UsageOutboxDispatcher, compensation, queued_usage

from tests.unit.project.project_fakes import FakeBilling


def now(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock.time(), tz=UTC)


async def enqueue(database: Database, rows: list[dict[str, object]]) -> None:
    async with database.session() as session:
        await ProjectRepository(session).enqueue_usage(rows)


async def queued(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(UsageOutboxRow)) or 0)


async def test_compensation_cancels_a_usage_that_was_never_recorded(
    project_db: Database, billing: FakeBilling, outbox: UsageOutboxDispatcher, clock: FakeClock
) -> None:
    """Replay-then-release nets zero when Billing never saw the original call."""
    await enqueue(project_db, compensation(now(clock), "ada", BilledMetric.PROJECTS, 1, "p-1"))
    assert await outbox.deliver_due() == 2
    assert billing.used("ada", BilledMetric.PROJECTS) == 0
    assert ("ada", "p-1:release") in billing.records


async def test_billing_down_keeps_rows_and_backs_off(
    project_db: Database, billing: FakeBilling, outbox: UsageOutboxDispatcher, clock: FakeClock
) -> None:
    """Failed deliveries stay queued, in order, and are retried only after the backoff."""
    billing.totals[("ada", BilledMetric.PROJECTS, "")] = 2
    await enqueue(
        project_db,
        [
            queued_usage(now(clock), "ada", BilledMetric.PROJECTS, -1, "a:release"),
            queued_usage(now(clock), "ada", BilledMetric.PROJECTS, -1, "b:release"),
        ],
    )
    billing.down = True
    assert await outbox.deliver_due() == 0
    billing.down = False
    assert await outbox.deliver_due() == 0  # still backing off
    clock.advance(outbox.backoff(1))
    assert await outbox.deliver_due() == 2
    assert billing.used("ada", BilledMetric.PROJECTS) == 0
    assert await queued(project_db) == 0


async def add_creating_project(database: Database, clock: FakeClock, project_id: str) -> None:
    created = now(clock)
    statements = Statements(database)
    try:
        await ProjectCreation(statements).add_project(
            {
                "id": project_id,
                "owner_id": "ada",
                "name": "Crashed",
                "name_key": "crashed",
                "description": "",
                "state": "creating",
                "version": 1,
                "member_count": 1,
                "request_id": None,
                "caller": "",
                "created_at": created,
                "updated_at": created,
            },
            {
                "project_id": project_id,
                "user_id": "ada",
                "role": "owner",
                "state": "active",
                "seat_id": "owner",
                "joined_at": created,
                "updated_at": created,
            },
        )
    finally:
        await statements.close()


async def test_sweeper_compensates_a_create_abandoned_mid_way(
    project_db: Database, billing: FakeBilling, clock: FakeClock
) -> None:
    """A row left 'creating' by a crash is deleted and its possible usage cancelled."""
    outbox = UsageOutboxDispatcher(project_db, billing, clock=clock, stale_after=300)
    await add_creating_project(project_db, clock, "p-crashed")
    # Billing did count it before the crash.
    await billing.record_usage("ada", BilledMetric.PROJECTS, 1, idempotency_key="p-crashed")
    assert await outbox.sweep_stale() == 0  # too young: the create may still be running
    clock.advance(301)
    assert await outbox.sweep_stale() == 1
    assert await outbox.deliver_due() == 2
    assert billing.used("ada", BilledMetric.PROJECTS) == 0
    async with project_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ProjectRow)) == 0


async def test_a_create_abandoned_while_the_database_was_away_goes_on_the_next_pass(
    project_db: Database, billing: FakeBilling, clock: FakeClock
) -> None:
    """A create this process gave up on is discarded and compensated at once, not in 300 s."""
    outbox = UsageOutboxDispatcher(project_db, billing, clock=clock, stale_after=300)
    await add_creating_project(project_db, clock, "p-cut")
    await billing.record_usage("ada", BilledMetric.PROJECTS, 1, idempotency_key="p-cut")
    outbox.abandon("p-cut", "ada")
    assert await outbox.discard_abandoned() == 1
    assert await outbox.discard_abandoned() == 0  # forgotten once handled
    assert await outbox.deliver_due() == 2
    assert billing.used("ada", BilledMetric.PROJECTS) == 0
    async with project_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ProjectRow)) == 0


async def test_permanently_refused_rows_do_not_block_the_queue(
    project_db: Database, billing: FakeBilling, outbox: UsageOutboxDispatcher, clock: FakeClock
) -> None:
    """A release Billing can never accept is dropped; the rows behind it are delivered."""
    billing.totals[("ada", BilledMetric.PROJECTS, "")] = 1
    await enqueue(
        project_db,
        [
            queued_usage(now(clock), "ada", BilledMetric.PROJECTS, -5, "too-much:release"),
            queued_usage(now(clock), "ada", BilledMetric.PROJECTS, -1, "ok:release"),
        ],
    )
    assert await outbox.deliver_due() == 1
    assert billing.used("ada", BilledMetric.PROJECTS) == 0
    assert await queued(project_db) == 0


@dataclass
class FailsOnKey(FakeBilling):
    """Answers UNAVAILABLE for one idempotency key and records the others."""

    failing_key: str = ""

    async def record_usage(self, user_id: str, metric: BilledMetric, quantity: int, *,
                           idempotency_key: str, scope_id: str = "",
                           enforce_limit: bool = False) -> None:  # fmt: skip
        if idempotency_key == self.failing_key:
            self.calls.append(("record", idempotency_key))
            raise Unavailable("billing timed out")
        await super().record_usage(
            user_id, metric, quantity, idempotency_key=idempotency_key, scope_id=scope_id
        )


async def test_a_pass_removes_the_rows_it_delivered_before_one_failed(
    project_db: Database, clock: FakeClock
) -> None:
    """Delivered rows go even when a later row of the same pass fails; the failed one and
    those behind it stay, in order, and nothing is delivered twice."""
    billing = FailsOnKey(failing_key="b")
    outbox = UsageOutboxDispatcher(project_db, billing, clock=clock)
    await enqueue(
        project_db,
        [queued_usage(now(clock), "ada", BilledMetric.PROJECTS, 1, key) for key in "abc"],
    )
    assert await outbox.deliver_due() == 1
    assert await queued(project_db) == 2
    billing.failing_key = ""
    clock.advance(outbox.backoff(1))
    assert await outbox.deliver_due() == 2
    assert await queued(project_db) == 0
    assert billing.calls == [("record", "a"), ("record", "b"), ("record", "b"), ("record", "c")]
    assert billing.used("ada", BilledMetric.PROJECTS) == 3


class CountingOutbox(UsageOutboxDispatcher):
    passes = 0

    async def deliver_due(self) -> int:
        self.passes += 1
        return await super().deliver_due()


async def test_rows_queued_while_a_pass_waits_its_turn_go_in_one_pass(
    project_db: Database, billing: FakeBilling, clock: FakeClock
) -> None:
    """After a pass, the next waits out ``min_pass_interval``: every row queued (and wake-up
    sent) meanwhile is delivered by that one pass."""
    outbox = CountingOutbox(project_db, billing, clock=clock, min_pass_interval=0.5)
    runner = asyncio.create_task(outbox.run())
    try:
        await settle(lambda: outbox.passes == 1 and clock.pending_sleepers > 0)
        for key in "abc":
            await enqueue(
                project_db, [queued_usage(now(clock), "ada", BilledMetric.PROJECTS, 1, key)]
            )
            outbox.wake()
        await settle(lambda: clock.pending_sleepers > 0)  # the pass waits its interval
        assert (outbox.passes, await queued(project_db)) == (1, 3)
        clock.advance(0.5)
        await settle(lambda: outbox.passes == 2 and clock.pending_sleepers > 0)
        assert await queued(project_db) == 0
        assert billing.used("ada", BilledMetric.PROJECTS) == 3
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def settle(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds. The fake clock stands still; the real
    one runs, since SQLite answers from aiosqlite's thread, which a busy machine may not
    schedule for a while (steps alone ran out under load): at most a few seconds."""
    for step in range(5_000):
        if condition():
            return
        await asyncio.sleep(0 if step < 1_000 else 0.001)
    raise AssertionError("the outbox never reached the expected state")
