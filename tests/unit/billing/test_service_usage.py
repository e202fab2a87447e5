"""RecordUsage and CheckSubscriptionLimits on SQLite: idempotency, limits, periods, notices."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from meshcore.completion import Completions
from meshcore.db import Database
from meshcore.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ResourceExhausted
from meshcore.testing import FakeClock
from sqlalchemy import func, select, update
from zoptal_billing.domain import UsageRequest
from zoptal_billing.metering import Metric
from zoptal_billing.models import ThresholdNoticeRow, UsageRecordRow
from zoptal_billing.service import BillingService

from tests.unit.billing.plan_requests import upgrade

CALLER = "service:project"
"""The principal key of the service that records usage in these tests."""

DAY = 86_400.0


def projects(user: str, key: str, quantity: int = 1, *, enforce: bool = True) -> UsageRequest:
    return UsageRequest(
        caller=CALLER,
        user_id=user,
        metric=Metric.PROJECTS,
        quantity=quantity,
        idempotency_key=key,
        enforce_limit=enforce,
    )


async def count(database: Database, model: type, **where: object) -> int:
    async with database.session() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def test_same_key_counts_once_and_replays_the_first_record(billing: BillingService) -> None:
    """A retried RecordUsage returns the first record, marked replayed, and counts once."""
    first = await billing.record_usage(projects("ada", "project-1"))
    again = await billing.record_usage(projects("ada", "project-1"))
    assert not first.replayed
    assert again.replayed
    assert again.record == first.record
    assert again.usage.used == 1


async def test_concurrent_calls_with_one_key_count_once(
    billing: BillingService, billing_db: Database
) -> None:
    """Ten simultaneous calls with the same key record one usage."""
    outcomes = await asyncio.gather(
        *(billing.record_usage(projects("ada", "same-key")) for _ in range(10))
    )
    assert sum(not outcome.replayed for outcome in outcomes) == 1
    assert {outcome.record.id for outcome in outcomes} == {outcomes[0].record.id}
    check = await billing.check_limits("ada", Metric.PROJECTS, 0)
    assert check.usage.used == 1
    assert await count(billing_db, UsageRecordRow, user_id="ada") == 1


async def test_same_key_with_other_parameters_is_already_exists(billing: BillingService) -> None:
    """Reusing a key with another quantity or metric is refused, not silently replayed."""
    await billing.record_usage(projects("ada", "k"))
    with pytest.raises(AlreadyExists, match="idempotency_key 'k'"):
        await billing.record_usage(projects("ada", "k", quantity=2))
    with pytest.raises(AlreadyExists):
        await billing.record_usage(
            UsageRequest(
                caller=CALLER,
                user_id="ada",
                metric=Metric.API_CALLS,
                quantity=1,
                idempotency_key="k",
            )
        )


async def test_keys_are_scoped_per_user(billing: BillingService) -> None:
    """Two users may use the same idempotency key independently."""
    await billing.record_usage(projects("ada", "k"))
    other = await billing.record_usage(projects("bob", "k"))
    assert not other.replayed
    assert other.usage.used == 1


async def test_keys_are_scoped_per_caller(billing: BillingService) -> None:
    """The same key for the same user from another service is another record; each caller's
    retry replays its own."""
    ours = await billing.record_usage(projects("ada", "k"))
    theirs = await billing.record_usage(
        dataclasses.replace(projects("ada", "k"), caller="service:x")
    )
    assert not theirs.replayed
    assert theirs.record.id != ours.record.id
    assert theirs.usage.used == 2
    again = await billing.record_usage(
        dataclasses.replace(projects("ada", "k"), caller="service:x")
    )
    assert (again.replayed, again.record.id) == (True, theirs.record.id)


async def test_a_record_from_before_keys_were_scoped_replays_for_any_caller(
    billing: BillingService, billing_db: Database
) -> None:
    """Records migrated from revision 0001 have no caller: a retry straddling the upgrade must
    still be a replay, never a second count."""
    first = await billing.record_usage(projects("ada", "k"))
    async with billing_db.session() as session:
        await session.execute(update(UsageRecordRow).values(caller=None))
    retried = await billing.record_usage(
        dataclasses.replace(projects("ada", "k"), caller="service:x")
    )
    assert (retried.replayed, retried.record.id, retried.usage.used) == (True, first.record.id, 1)


async def test_enforced_limit_refuses_and_records_nothing(
    billing: BillingService, billing_db: Database
) -> None:
    """On the free plan (3 projects) the fourth enforced record is RESOURCE_EXHAUSTED."""
    for index in range(3):
        await billing.record_usage(projects("ada", f"p{index}"))
    with pytest.raises(ResourceExhausted, match="projects limit is 3 on plan 'free'"):
        await billing.record_usage(projects("ada", "p3"))
    assert await count(billing_db, UsageRecordRow, user_id="ada") == 3
    # The refused key was not burnt: after an upgrade the same key records normally.
    await upgrade(billing, "ada", "pro")
    outcome = await billing.record_usage(projects("ada", "p3"))
    assert not outcome.replayed
    assert outcome.usage.used == 4


async def test_concurrent_enforced_records_never_exceed_the_limit(billing: BillingService) -> None:
    """Eight racing creates on a 3-project plan: exactly three are accepted."""
    results = await asyncio.gather(
        *(billing.record_usage(projects("ada", f"race-{i}")) for i in range(8)),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ResourceExhausted)]
    assert (len(accepted), len(refused)) == (3, 5)
    assert (await billing.check_limits("ada", Metric.PROJECTS, 0)).usage.used == 3


async def test_unenforced_usage_may_go_over_the_limit(billing: BillingService) -> None:
    """Without enforce_limit a record is accepted past the limit (metering, not gating)."""
    outcome = await billing.record_usage(projects("ada", "bulk", quantity=5, enforce=False))
    assert outcome.usage.used == 5
    check = await billing.check_limits("ada", Metric.PROJECTS, 0)
    assert not check.allowed
    assert check.usage.remaining == 0


async def test_release_below_zero_is_failed_precondition(billing: BillingService) -> None:
    """A gauge cannot be released below zero."""
    await billing.record_usage(projects("ada", "p1"))
    await billing.record_usage(projects("ada", "p1:release", quantity=-1))
    with pytest.raises(FailedPrecondition, match="below zero"):
        await billing.record_usage(projects("ada", "p1:release-again", quantity=-1))


async def test_usage_past_a_64_bit_total_is_invalid_argument(billing: BillingService) -> None:
    """quantity = 2**63-1 twice: the second is refused naming the field, and nothing is kept."""
    largest = 2**63 - 1
    await billing.record_usage(projects("ada", "huge-1", quantity=largest, enforce=False))
    for _ in range(2):  # a retry with the same key ends the same way: nothing was kept
        with pytest.raises(InvalidArgument, match="quantity"):
            await billing.record_usage(projects("ada", "huge-2", quantity=largest, enforce=False))
    assert (await billing.check_limits("ada", Metric.PROJECTS, 0)).usage.used == largest


async def test_check_limits_reports_usage_limit_and_remaining(billing: BillingService) -> None:
    """The answer carries current usage, the limit, what remains and the plan."""
    await billing.record_usage(projects("ada", "p1"))
    check = await billing.check_limits("ada", Metric.PROJECTS, 2)
    assert check.allowed
    assert (check.usage.used, check.usage.limit, check.usage.remaining) == (1, 3, 2)
    assert check.plan_id == "free"
    assert not (await billing.check_limits("ada", Metric.PROJECTS, 3)).allowed


async def test_api_calls_reset_in_the_next_period(
    billing: BillingService, clock: FakeClock
) -> None:
    """Counter usage is per calendar month; gauges carry over."""
    api_call = UsageRequest(
        caller=CALLER,
        user_id="ada",
        metric=Metric.API_CALLS,
        quantity=500,
        idempotency_key="batch-1",
    )
    await billing.record_usage(api_call)
    await billing.record_usage(projects("ada", "p1"))
    clock.advance(25 * DAY)  # 2026-12-05
    calls = await billing.check_limits("ada", Metric.API_CALLS, 0)
    assert calls.usage.used == 0
    assert calls.usage.period_start.month == 12
    assert (await billing.check_limits("ada", Metric.PROJECTS, 0)).usage.used == 1
    replay = await billing.record_usage(api_call)
    assert replay.replayed
    assert replay.record.period == "2026-11"


async def test_members_are_counted_per_project(billing: BillingService) -> None:
    """Member usage is a gauge per project scope, limited per project."""

    def member(project: str, key: str) -> UsageRequest:
        return UsageRequest(
            caller=CALLER,
            user_id="ada",
            metric=Metric.MEMBERS_PER_PROJECT,
            quantity=1,
            idempotency_key=key,
            scope_id=project,
            enforce_limit=True,
        )

    for index in range(5):
        await billing.record_usage(member("p1", f"p1-m{index}"))
    with pytest.raises(ResourceExhausted):
        await billing.record_usage(member("p1", "p1-m5"))
    assert (await billing.record_usage(member("p2", "p2-m0"))).usage.used == 1


async def test_crossing_thresholds_queues_one_notice_each(
    billing: BillingService, billing_db: Database
) -> None:
    """80 % and 100 % each queue one notice per period, however often usage is replayed."""
    usage = [
        UsageRequest(
            caller=CALLER,
            user_id="ada",
            metric=Metric.API_CALLS,
            quantity=q,
            idempotency_key=f"calls-{i}",
        )
        for i, q in enumerate((7_999, 1, 1, 1_999, 5))
    ]
    for request in usage + usage:
        await billing.record_usage(request)
    async with billing_db.session() as session:
        rows = (await session.scalars(select(ThresholdNoticeRow))).all()
    assert sorted((row.threshold_percent, row.used) for row in rows) == [(80, 8_000), (100, 10_000)]
    assert {row.period for row in rows} == {"2026-11"}


async def test_a_change_crossing_both_thresholds_queues_only_the_highest(
    billing: BillingService, billing_db: Database
) -> None:
    """0 to 10 000 API calls at once queues the 100 % notice alone; a gauge dropping and
    crossing 80 % again after its 100 % notice queues nothing (both once per period)."""
    calls = dataclasses.replace(projects("ada", "calls", 10_000), metric=Metric.API_CALLS)
    await billing.record_usage(calls)
    for index, quantity in enumerate((3, -2, 1, 1)):
        await billing.record_usage(projects("ada", f"p{index}", quantity))
    async with billing_db.session() as session:
        rows = (await session.scalars(select(ThresholdNoticeRow))).all()
    assert sorted((row.metric, row.threshold_percent, row.used) for row in rows) == [
        ("api_calls", 100, 10_000),
        ("projects", 100, 3),
    ]


async def test_notice_queued_callback_fires_after_commit(billing_db: Database) -> None:
    """The dispatcher is woken only when a notice was actually queued."""
    calls: list[int] = []
    billing = BillingService(
        billing_db, clock=FakeClock(), on_notice_queued=lambda: calls.append(1)
    )
    await billing.record_usage(projects("ada", "p1"))
    assert calls == []
    await billing.record_usage(projects("ada", "p2"))
    await billing.record_usage(projects("ada", "p3"))
    assert calls == [1]


async def test_a_usage_whose_caller_gives_up_is_recorded_all_the_same(
    billing_db: Database, clock: FakeClock
) -> None:
    """The caller's cancellation (its deadline passed) does not cut RecordUsage short: the
    record ends as it would have, and a retry with the key replays it."""
    completions = Completions()
    billing = BillingService(billing_db, clock=clock, completions=completions)
    call = asyncio.create_task(billing.record_usage(projects("ada", "p1")))
    await asyncio.sleep(0)  # the call has handed its work over
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await completions.drain()
    assert await count(billing_db, UsageRecordRow) == 1
    replay = await billing.record_usage(projects("ada", "p1"))
    assert (replay.replayed, replay.usage.used) == (True, 1)
