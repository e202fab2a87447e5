"""Billing's concurrency guarantees on the real PostgreSQL (row locks, unique indexes)."""

from __future__ import annotations

import asyncio

import pytest
from meshcore.db import Database
from meshcore.errors import InvalidArgument, ResourceExhausted
from sqlalchemy import func, select
from zoptal_billing.domain import UsageRequest
from zoptal_billing.metering import Metric
from zoptal_billing.models import SubscriptionRow, ThresholdNoticeRow, UsageRecordRow
from zoptal_billing.service import BillingService

CALLER = "service:project"
"""The principal key of the service that records usage in these tests."""

pytestmark = pytest.mark.postgres


async def rows(database: Database, model: type) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_concurrent_record_usage_with_one_key_counts_once(
    billing_pg: Database, billing: BillingService
) -> None:
    """Twenty racing RecordUsage calls with one key: one record, usage 1, one original."""
    request = UsageRequest(
        caller=CALLER, user_id="ada", metric=Metric.API_CALLS, quantity=1, idempotency_key="call-1"
    )
    outcomes = await asyncio.gather(*(billing.record_usage(request) for _ in range(20)))
    assert sum(not outcome.replayed for outcome in outcomes) == 1
    assert len({outcome.record.id for outcome in outcomes}) == 1
    assert await rows(billing_pg, UsageRecordRow) == 1
    assert (await billing.check_limits("ada", Metric.API_CALLS, 0)).usage.used == 1


async def test_project_limit_is_exact_under_concurrent_enforced_records(
    billing_pg: Database, billing: BillingService
) -> None:
    """Ten racing enforced +1s on the free plan (3 projects): exactly three succeed."""
    results = await asyncio.gather(
        *(
            billing.record_usage(
                UsageRequest(
                    caller=CALLER,
                    user_id="ada",
                    metric=Metric.PROJECTS,
                    quantity=1,
                    idempotency_key=f"project-{index}",
                    enforce_limit=True,
                )
            )
            for index in range(10)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 3
    assert sum(isinstance(r, ResourceExhausted) for r in results) == 7
    assert (await billing.check_limits("ada", Metric.PROJECTS, 0)).usage.used == 3
    assert await rows(billing_pg, UsageRecordRow) == 3


async def test_first_use_from_many_calls_creates_one_subscription(
    billing_pg: Database, billing: BillingService
) -> None:
    """Concurrent first calls for a new user agree on a single free subscription."""
    results = await asyncio.gather(*(billing.subscription("newcomer") for _ in range(10)))
    assert len({subscription.id for subscription, _ in results}) == 1
    assert await rows(billing_pg, SubscriptionRow) == 1


async def test_thresholds_queue_one_notice_each_under_concurrent_usage(
    billing_pg: Database, billing: BillingService
) -> None:
    """Racing API-call records that cross 80 % and 100 % queue exactly two notices."""
    await asyncio.gather(
        *(
            billing.record_usage(
                UsageRequest(
                    caller=CALLER,
                    user_id="ada",
                    metric=Metric.API_CALLS,
                    quantity=1_000,
                    idempotency_key=f"batch-{index}",
                )
            )
            for index in range(12)
        )
    )
    assert (await billing.check_limits("ada", Metric.API_CALLS, 0)).usage.used == 12_000
    async with billing_pg.session() as session:
        percents = sorted(await session.scalars(select(ThresholdNoticeRow.threshold_percent)))
    assert percents == [80, 100]


async def test_a_total_past_64_bits_is_invalid_argument_and_keeps_nothing(
    billing_pg: Database, billing: BillingService
) -> None:
    """PostgreSQL refuses the overflowing sum inside RecordUsage's transaction: the caller
    gets INVALID_ARGUMENT naming the field, and neither the record nor the total changes."""
    largest = 2**63 - 1

    def huge(key: str) -> UsageRequest:
        return UsageRequest(
            caller=CALLER, user_id="ada", metric=Metric.STORAGE_BYTES, quantity=largest,
            idempotency_key=key,
        )  # fmt: skip

    await billing.record_usage(huge("huge-1"))
    for _ in range(2):  # a retry ends the same way: nothing of the first attempt was kept
        with pytest.raises(InvalidArgument, match="quantity"):
            await billing.record_usage(huge("huge-2"))
    assert await rows(billing_pg, UsageRecordRow) == 1
    assert (await billing.check_limits("ada", Metric.STORAGE_BYTES, 0)).usage.used == largest
    # The held connection is usable after the refused statement.
    small = UsageRequest(
        caller=CALLER, user_id="ada", metric=Metric.API_CALLS, quantity=1, idempotency_key="c-1"
    )
    assert (await billing.record_usage(small)).usage.used == 1
