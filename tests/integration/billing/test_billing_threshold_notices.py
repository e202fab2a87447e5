"""Usage-threshold emails over real gRPC on the real PostgreSQL (issue 17, item 5).

One email per threshold, metric and period, and only news: a change crossing 80 % and 100 %
at once sends the 100 % email alone, and a gauge that goes down and crosses a threshold again
in the same period sends nothing more. What Notification would receive is what Billing's
dispatcher hands its sender; the outbox table is everything Billing will ever send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from zoptal.billing.v1 import billing_pb2 as pb
from zoptal_billing.models import ThresholdNoticeRow
from zoptal_billing.notices import compose_email

from tests.integration.billing.billing_harness import (
    Outbox,
    RunningBilling,
    as_service,
    billing_settings,
    running_billing,
)

pytestmark = pytest.mark.postgres

METER = as_service("project", "billing:read", "billing:write")
GIB = 1024**3
"""The free plan's storage limit."""


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
async def billing(postgres_url: str, outbox: Outbox) -> AsyncIterator[RunningBilling]:
    async with running_billing(billing_settings(postgres_url), sender=outbox) as running:
        yield running


async def record(
    billing: RunningBilling, metric: pb.Metric, quantities: list[int], *, scope_id: str = ""
) -> None:
    """RecordUsage of each quantity for Ada, in order, each under a key of its own."""
    for index, quantity in enumerate(quantities):
        await billing.stub.RecordUsage(
            pb.RecordUsageRequest(
                user_id="ada",
                metric=metric,
                quantity=quantity,
                idempotency_key=f"{pb.Metric.Name(metric)}-{index}",
                scope_id=scope_id,
            ),
            metadata=METER,
        )


async def sent_once_drained(billing: RunningBilling, outbox: Outbox) -> list[tuple[int, int]]:
    """(threshold, used) of every notice sent, once Billing has none left to send."""

    async def undelivered() -> int:
        async with billing.app.database.session() as session:
            query = select(func.count()).where(ThresholdNoticeRow.delivered_at.is_(None))
            return int(await session.scalar(query) or 0)

    for _ in range(200):  # the dispatcher sends in the background: wait up to 10 s
        if not await undelivered():
            return [(notice.threshold_percent, notice.used) for notice in outbox.sent]
        await asyncio.sleep(0.05)
    raise AssertionError("threshold notices still undelivered after 10 s")


async def test_a_change_crossing_both_thresholds_sends_only_the_100_percent_email(
    billing: RunningBilling, outbox: Outbox
) -> None:
    """The third of 3 projects is 80 % and 100 % at once: one email, "3 of the 3", telling
    the limit is reached; replaying every record sends nothing more."""
    for _ in range(2):
        await record(billing, pb.METRIC_PROJECTS, [1, 1, 1])
    assert await sent_once_drained(billing, outbox) == [(100, 3)]
    subject, body = compose_email(outbox.sent[0])
    assert subject == "You have reached your plan's limit of 3 projects"
    assert body.startswith("You are using 3 of the 3 projects your 'free' plan includes")


async def test_a_gauge_crossing_80_percent_again_after_the_100_percent_email_sends_nothing(
    billing: RunningBilling, outbox: Outbox
) -> None:
    """Storage jumps to the whole GiB (the 100 % email), drops to half and rises to 90 %: the
    user already knows more than the 80 % email would say."""
    await record(billing, pb.METRIC_STORAGE_BYTES, [GIB, -GIB // 2, GIB * 2 // 5])
    assert await sent_once_drained(billing, outbox) == [(100, GIB)]


async def test_each_threshold_is_emailed_once_per_period_however_the_gauge_moves(
    billing: RunningBilling, outbox: Outbox
) -> None:
    """Members of one project (limit 5): 4 is the 80 % email, 5 the 100 % one; down to 2 and
    back up through 4 and 5 sends neither again."""
    await record(billing, pb.METRIC_MEMBERS_PER_PROJECT, [1, 1, 1, 1, 1, -3, 2, 1], scope_id="p1")
    assert await sent_once_drained(billing, outbox) == [(80, 4), (100, 5)]
