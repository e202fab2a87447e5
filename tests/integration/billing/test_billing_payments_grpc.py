"""Paid plans over real gRPC, on SQLite and on the real PostgreSQL: upgrades wait for the
test-mode provider's asynchronous confirmation, downgrades wait for the end of the period,
admins may grant a plan, and a pending payment survives a restart.

Billing runs on a fake clock (tokens are checked on the real one, see ``running_billing``), so
the test moves time past the provider's settle delay or to the first of next month instead of
sleeping; the background pass then runs on its own, as it would in production.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import grpc
import pytest
from meshcore.testing import FakeClock
from zoptal.billing.v1 import billing_pb2 as pb

from tests.integration.billing.billing_harness import (
    ADMIN,
    METER,
    DiscardNotices,
    RunningBilling,
    as_service,
    as_user,
    billing_settings,
    running_billing,
)

SETTLE_SECONDS = 30.0
"""The test-mode provider's settle delay here: long, so nothing settles unless the test moves
the fake clock past it."""


@pytest.fixture
def clock() -> FakeClock:
    # Mid-month, at the real time of day: 2026-11-10 plus the seconds of today.
    return FakeClock(wall_start=1_794_268_800.0 + time.time() % 86_400)


def settings_for(url: str) -> object:
    return billing_settings(
        url, payment_test_settle_seconds=SETTLE_SECONDS, payment_reconcile_seconds=0.05
    )


@pytest.fixture
async def billing(sqlite_or_postgres_url: str, clock: FakeClock) -> AsyncIterator[RunningBilling]:
    async with running_billing(
        settings_for(sqlite_or_postgres_url), sender=DiscardNotices(), clock=clock
    ) as running:  # type: ignore[arg-type]
        yield running


def change(user: str, plan: str, token: str = "", **extra: bool) -> pb.ChangeSubscriptionRequest:
    return pb.ChangeSubscriptionRequest(user_id=user, plan_id=plan, payment_token=token, **extra)


async def subscription(billing: RunningBilling, user: str) -> pb.Subscription:
    reply = await billing.stub.GetUserSubscription(
        pb.GetUserSubscriptionRequest(user_id=user), metadata=as_user(user)
    )
    return reply.subscription


async def plan_in_force(billing: RunningBilling, user: str) -> str:
    """The plan limits are counted against (CheckSubscriptionLimits settles no payment)."""
    check = await billing.stub.CheckSubscriptionLimits(
        pb.CheckSubscriptionLimitsRequest(user_id=user, metric=pb.METRIC_PROJECTS),
        metadata=METER,
    )
    return check.plan_id


async def eventually(clock: FakeClock, what: str, probe: Callable[[], Awaitable[bool]]) -> None:
    """Wait for ``probe`` while Billing's time keeps flowing (a tenth of a second per look), as
    it would for real: a background pass that was busy when the test moved the clock sleeps
    again on it and must be woken by time passing."""
    async with asyncio.timeout(15):
        while not await probe():
            clock.advance(0.1)
            await asyncio.sleep(0.05)


async def expect(code: grpc.StatusCode, call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    assert error.value.code() == code, error.value.details()
    return error.value.details() or ""


async def paid_upgrade(billing: RunningBilling, clock: FakeClock, user: str, plan: str) -> None:
    await billing.stub.ChangeSubscription(
        change(user, plan, "tok_test_approve"), metadata=as_user(user)
    )
    clock.advance(SETTLE_SECONDS)
    await eventually(clock, "the upgrade", lambda: _is(plan_in_force(billing, user), plan))


async def _is(value: Awaitable[str], expected: str) -> bool:
    return await value == expected


async def test_an_upgrade_waits_for_the_payment_then_applies(
    billing: RunningBilling, clock: FakeClock
) -> None:
    """Pro with an approving token: AWAITING_PAYMENT at the price of pro, still free; once the
    provider confirms, the background pass (no read involved) puts pro in force."""
    reply = await billing.stub.ChangeSubscription(
        change("ada", "pro", "tok_test_approve"), metadata=as_user("ada")
    )
    pending = reply.subscription.latest_change
    assert reply.subscription.plan.id == "free"
    assert pending.status == pb.PLAN_CHANGE_STATUS_AWAITING_PAYMENT
    assert (pending.from_plan_id, pending.to_plan_id) == ("free", "pro")
    assert (pending.amount_minor_units, pending.currency) == (2900, "USD")
    assert pending.payment_id.startswith("pay_test_")
    assert await plan_in_force(billing, "ada") == "free"

    clock.advance(SETTLE_SECONDS)
    await eventually(clock, "pro in force", lambda: _is(plan_in_force(billing, "ada"), "pro"))
    after = await subscription(billing, "ada")
    assert after.plan.id == "pro"
    assert after.latest_change.id == pending.id
    assert after.latest_change.status == pb.PLAN_CHANGE_STATUS_APPLIED
    assert after.latest_change.HasField("effective_at")


@pytest.mark.parametrize(
    ("token", "reason"),
    [("tok_test_decline", "card_declined"), ("tok_test_insufficient_funds", "insufficient_funds")],
)
async def test_a_declined_payment_keeps_the_plan_and_says_why(
    billing: RunningBilling, clock: FakeClock, token: str, reason: str
) -> None:
    """The user sees DECLINED with the provider's reason; the plan never changed."""
    await billing.stub.ChangeSubscription(change("ada", "pro", token), metadata=as_user("ada"))
    clock.advance(SETTLE_SECONDS)
    declined = await subscription(billing, "ada")  # settles on read
    assert declined.plan.id == "free"
    assert declined.latest_change.status == pb.PLAN_CHANGE_STATUS_DECLINED
    assert declined.latest_change.reason.startswith(reason)
    # Nothing is pending any more: the user may try again with another card.
    await paid_upgrade(billing, clock, "ada", "pro")


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (change("ada", "pro"), "is required"),
        (change("ada", "pro", "tok_made_up"), "unknown token"),
        (change("ada", "pro", " tok_test_approve"), "spaces"),
        (change("ada", "pro", "t" * 256), "at most 255"),
    ],
)
async def test_a_bad_payment_token_is_invalid_argument_naming_it(
    billing: RunningBilling, request_: pb.ChangeSubscriptionRequest, problem: str
) -> None:
    """Missing for an upgrade, unknown to the provider, or malformed."""
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        billing.stub.ChangeSubscription(request_, metadata=as_user("ada")),
    )
    assert details.startswith("payment_token:")
    assert problem in details
    assert (await subscription(billing, "ada")).plan.id == "free"


async def test_a_retry_while_awaiting_payment_returns_the_same_change(
    billing: RunningBilling,
) -> None:
    """The same upgrade again is the same change and payment (nothing charged twice); another
    plan while a payment is in flight is FAILED_PRECONDITION."""
    first = await billing.stub.ChangeSubscription(
        change("ada", "pro", "tok_test_approve"), metadata=as_user("ada")
    )
    again = await billing.stub.ChangeSubscription(
        change("ada", "pro", "tok_test_approve"), metadata=as_user("ada")
    )
    assert again.subscription.latest_change == first.subscription.latest_change
    details = await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        billing.stub.ChangeSubscription(
            change("ada", "enterprise", "tok_test_approve"), metadata=as_user("ada")
        ),
    )
    assert "awaiting payment" in details


async def test_a_downgrade_is_scheduled_for_the_end_of_the_period(
    billing: RunningBilling, clock: FakeClock
) -> None:
    """Back to free: SCHEDULED for the first of next month, pro until then, free after."""
    await paid_upgrade(billing, clock, "ada", "pro")
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        billing.stub.ChangeSubscription(
            change("ada", "free", "tok_test_approve"), metadata=as_user("ada")
        ),
    )
    assert details.startswith("payment_token: must be empty")
    reply = await billing.stub.ChangeSubscription(change("ada", "free"), metadata=as_user("ada"))
    scheduled = reply.subscription.latest_change
    assert scheduled.status == pb.PLAN_CHANGE_STATUS_SCHEDULED
    assert scheduled.effective_at.ToDatetime(UTC) == datetime(2026, 12, 1, tzinfo=UTC)
    assert reply.subscription.plan.id == "pro"
    assert scheduled.effective_at == reply.subscription.current_period_end

    end = reply.subscription.current_period_end.ToDatetime(UTC).timestamp()
    clock.advance(end - clock.time())
    await eventually(clock, "free in force", lambda: _is(plan_in_force(billing, "ada"), "free"))
    after = await subscription(billing, "ada")
    assert after.latest_change.status == pb.PLAN_CHANGE_STATUS_APPLIED
    assert after.current_period_start.ToDatetime(UTC) == datetime(2026, 12, 1, tzinfo=UTC)


async def test_a_downgrade_is_refused_when_usage_outgrew_it_by_the_period_end(
    billing: RunningBilling, clock: FakeClock
) -> None:
    """Scheduled with 0 projects, then 4 are made: at the period end the downgrade is DECLINED
    naming projects, and pro stays."""
    await paid_upgrade(billing, clock, "ada", "pro")
    await billing.stub.ChangeSubscription(change("ada", "free"), metadata=as_user("ada"))
    for index in range(4):
        await billing.stub.RecordUsage(
            pb.RecordUsageRequest(
                user_id="ada", metric=pb.METRIC_PROJECTS, quantity=1, idempotency_key=f"p{index}"
            ),
            metadata=METER,
        )
    clock.advance(datetime(2026, 12, 1, tzinfo=UTC).timestamp() - clock.time())
    after = await subscription(billing, "ada")
    assert after.plan.id == "pro"
    assert after.latest_change.status == pb.PLAN_CHANGE_STATUS_DECLINED
    assert "projects usage 4" in after.latest_change.reason


async def test_keeping_the_current_plan_cancels_a_scheduled_downgrade(
    billing: RunningBilling, clock: FakeClock
) -> None:
    """Asking for pro while on pro with free scheduled: the downgrade is CANCELED."""
    await paid_upgrade(billing, clock, "ada", "pro")
    await billing.stub.ChangeSubscription(change("ada", "free"), metadata=as_user("ada"))
    kept = await billing.stub.ChangeSubscription(change("ada", "pro"), metadata=as_user("ada"))
    assert kept.subscription.latest_change.status == pb.PLAN_CHANGE_STATUS_CANCELED
    clock.advance(datetime(2026, 12, 2, tzinfo=UTC).timestamp() - clock.time())
    assert (await subscription(billing, "ada")).plan.id == "pro"


async def test_only_admins_grant_a_plan_without_payment(billing: RunningBilling) -> None:
    """An admin's complimentary grant applies at once; the user themself and a billing:write
    service are PERMISSION_DENIED."""
    for metadata in (as_user("ada"), METER):
        await expect(
            grpc.StatusCode.PERMISSION_DENIED,
            billing.stub.ChangeSubscription(
                change("ada", "enterprise", complimentary=True), metadata=metadata
            ),
        )
    granted = await billing.stub.ChangeSubscription(
        change("ada", "enterprise", complimentary=True), metadata=ADMIN
    )
    assert granted.subscription.plan.id == "enterprise"
    assert granted.subscription.latest_change.complimentary
    assert granted.subscription.latest_change.status == pb.PLAN_CHANGE_STATUS_APPLIED
    assert granted.subscription.latest_change.amount_minor_units == 0


async def test_a_pending_payment_survives_a_restart(
    sqlite_or_postgres_url: str, clock: FakeClock
) -> None:
    """Billing stops while the payment is pending; the next Billing on the same database settles
    it (the change and the provider's ledger are both durable)."""
    settings = settings_for(sqlite_or_postgres_url)
    async with running_billing(settings, sender=DiscardNotices(), clock=clock) as first:  # type: ignore[arg-type]
        await first.stub.ChangeSubscription(
            change("ada", "enterprise", "tok_test_approve"), metadata=as_user("ada")
        )
    clock.advance(SETTLE_SECONDS)
    async with running_billing(settings, sender=DiscardNotices(), clock=clock) as second:  # type: ignore[arg-type]
        await eventually(
            clock, "enterprise in force", lambda: _is(plan_in_force(second, "ada"), "enterprise")
        )


async def test_record_usage_keys_belong_to_their_caller(billing: RunningBilling) -> None:
    """One key from two services is two records; each service's retry is its own replay."""
    other = as_service("importer", "billing:read", "billing:write")
    request = pb.RecordUsageRequest(
        user_id="ada", metric=pb.METRIC_PROJECTS, quantity=1, idempotency_key="shared-key"
    )
    from_project = await billing.stub.RecordUsage(request, metadata=METER)
    from_importer = await billing.stub.RecordUsage(request, metadata=other)
    assert (from_project.replayed, from_importer.replayed) == (False, False)
    assert from_project.record.id != from_importer.record.id
    assert from_importer.period_usage.used == 2

    replay = await billing.stub.RecordUsage(request, metadata=other)
    assert (replay.replayed, replay.record.id) == (True, from_importer.record.id)
    assert replay.period_usage.used == 2
    # A different quantity under the importer's key is refused; the project's is untouched.
    changed = pb.RecordUsageRequest()
    changed.CopyFrom(request)
    changed.quantity = 2
    await expect(grpc.StatusCode.ALREADY_EXISTS, billing.stub.RecordUsage(changed, metadata=other))
    assert (await billing.stub.RecordUsage(request, metadata=METER)).replayed
