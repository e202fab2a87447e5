"""The threshold notice outbox: delivered once, retried while Notification is down."""

from __future__ import annotations

import asyncio

import pytest
from meshcore.db import Database
from meshcore.testing import FakeClock
from sqlalchemy import select
from zoptal_billing.domain import UsageRequest
from zoptal_billing.metering import Metric
from zoptal_billing.models import ThresholdNoticeRow
from zoptal_billing.notices import (
    PermanentDeliveryError,
    ThresholdNotice,
    ThresholdNoticeDispatcher,
    compose_email,
)
from zoptal_billing.service import BillingService

CALLER = "service:project"
"""The principal key of the service that records usage in these tests."""


class RecordingSender:
    """Records what it was asked to send; fails while ``down`` is set."""

    def __init__(self, expected: int = 2) -> None:
        self.sent: list[ThresholdNotice] = []
        self.down: BaseException | None = None
        self.expected = expected
        self.all_delivered = asyncio.Event()

    async def send(self, notice: ThresholdNotice) -> None:
        if self.down is not None:
            raise self.down
        self.sent.append(notice)
        if len(self.sent) >= self.expected:
            self.all_delivered.set()


async def reach_member_limit(billing: BillingService, user: str = "ada") -> None:
    """Five members, one at a time, in one project (limit 5): the 80 % and the 100 % notice."""
    for index in range(5):
        await billing.record_usage(
            UsageRequest(
                caller=CALLER,
                user_id=user,
                metric=Metric.MEMBERS_PER_PROJECT,
                scope_id="p1",
                quantity=1,
                idempotency_key=f"m{index}",
            )
        )


async def notices(database: Database) -> list[ThresholdNoticeRow]:
    async with database.session() as session:
        query = select(ThresholdNoticeRow).order_by(ThresholdNoticeRow.threshold_percent)
        return list((await session.scalars(query)).all())


async def test_each_notice_is_delivered_once(
    billing: BillingService, billing_db: Database, clock: FakeClock
) -> None:
    """Reaching the limit sends the 80 % and 100 % emails once, even over repeated passes."""
    sender = RecordingSender()
    dispatcher = ThresholdNoticeDispatcher(billing_db, sender, clock=clock)
    await reach_member_limit(billing)
    assert (await dispatcher.dispatch_due()).delivered == 2
    assert (await dispatcher.dispatch_due()).attempted == 0
    assert sorted(n.threshold_percent for n in sender.sent) == [80, 100]
    assert all(row.delivered_at is not None for row in await notices(billing_db))
    keys = {n.idempotency_key for n in sender.sent}
    assert len(keys) == 2
    assert all(key.startswith("billing.usage-threshold:") for key in keys)


async def test_notification_down_usage_recorded_and_email_sent_when_back(
    billing: BillingService, billing_db: Database, clock: FakeClock
) -> None:
    """A failed send is retried after its backoff, with the same key, until it goes through."""
    sender = RecordingSender()
    sender.down = ConnectionError("notification unavailable")
    dispatcher = ThresholdNoticeDispatcher(billing_db, sender, clock=clock, initial_backoff=2.0)
    await reach_member_limit(billing)
    assert (await dispatcher.dispatch_due()).retrying == 2
    assert (await billing.check_limits("ada", Metric.MEMBERS_PER_PROJECT, 0, "p1")).usage.used == 5
    sender.down = None
    clock.advance(1.0)
    assert (await dispatcher.dispatch_due()).attempted == 0  # still backing off
    clock.advance(1.0)
    assert (await dispatcher.dispatch_due()).delivered == 2
    rows = await notices(billing_db)
    assert [row.attempts for row in rows] == [2, 2]
    assert all(row.last_error is None for row in rows)


async def test_backoff_doubles_up_to_its_cap(billing_db: Database) -> None:
    """Retry delays grow 1, 2, 4, ... seconds and stop growing at the maximum."""
    dispatcher = ThresholdNoticeDispatcher(billing_db, RecordingSender(), max_backoff=10.0)
    assert [dispatcher.backoff(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


async def test_permanent_failure_abandons_the_notice(
    billing: BillingService, billing_db: Database, clock: FakeClock
) -> None:
    """A notice that can never be delivered is abandoned instead of retried forever."""
    sender = RecordingSender()
    sender.down = PermanentDeliveryError("user not found")
    dispatcher = ThresholdNoticeDispatcher(billing_db, sender, clock=clock)
    await reach_member_limit(billing)
    assert (await dispatcher.dispatch_due()).abandoned == 2
    clock.advance(3_600)
    assert (await dispatcher.dispatch_due()).attempted == 0
    rows = await notices(billing_db)
    assert all(row.abandoned_at is not None and row.delivered_at is None for row in rows)


async def test_a_leased_notice_is_not_sent_by_a_second_dispatcher(
    billing: BillingService, billing_db: Database, clock: FakeClock
) -> None:
    """Two dispatchers (two replicas) racing over the same notices send each one once."""
    sender = RecordingSender()
    first = ThresholdNoticeDispatcher(billing_db, sender, clock=clock)
    second = ThresholdNoticeDispatcher(billing_db, sender, clock=clock)
    await reach_member_limit(billing)
    results = await asyncio.gather(first.dispatch_due(), second.dispatch_due())
    assert sum(result.delivered for result in results) == 2
    assert len(sender.sent) == 2


async def test_running_dispatcher_sends_as_soon_as_woken(
    billing_db: Database, clock: FakeClock
) -> None:
    """The background loop delivers right after RecordUsage wakes it, without waiting a poll."""
    sender = RecordingSender()
    dispatcher = ThresholdNoticeDispatcher(billing_db, sender, clock=clock, poll_interval=60.0)
    billing = BillingService(billing_db, clock=clock, on_notice_queued=dispatcher.wake)
    task = asyncio.create_task(dispatcher.run())
    try:
        await reach_member_limit(billing)
        await asyncio.wait_for(sender.all_delivered.wait(), timeout=5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sorted(n.threshold_percent for n in sender.sent) == [80, 100]


def test_email_names_the_metric_usage_and_plan() -> None:
    """The 100 % email says the limit is reached; the body gives usage, limit and plan."""
    notice = ThresholdNotice(
        id="n1",
        user_id="ada",
        metric=Metric.PROJECTS,
        scope_id="",
        period="2026-11",
        threshold_percent=100,
        plan_id="free",
        used=3,
        limit=3,
        idempotency_key="k",
        attempts=0,
    )
    subject, body = compose_email(notice)
    assert subject == "You have reached your plan's limit of 3 projects"
    assert "3 of the 3 projects" in body
    assert "'free'" in body
