"""Plans and subscriptions: seeded plans, the implicit free plan, paid upgrades and downgrades
at the period's end, on SQLite with the test-mode provider (see also the gRPC tests in
tests/integration/billing/test_billing_payments_grpc.py)."""

from __future__ import annotations

import asyncio

import pytest
from meshcore.completion import Completions
from meshcore.db import Database
from meshcore.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from meshcore.testing import FakeClock
from zoptal_billing.domain import UsageRequest
from zoptal_billing.metering import Metric
from zoptal_billing.service import BillingService

from tests.unit.billing.plan_requests import change, upgrade

CALLER = "service:project"
"""The principal key of the service that records usage in these tests."""
DECEMBER_1 = 1_796_083_200.0


async def test_plans_are_seeded_cheapest_first_with_limits(billing: BillingService) -> None:
    """The migration seeds free, pro and enterprise; enterprise is unlimited."""
    plans = await billing.plans()
    assert [plan.id for plan in plans] == ["free", "pro", "enterprise"]
    assert [plan.price_minor_units for plan in plans] == sorted(p.price_minor_units for p in plans)
    free, _, enterprise = plans
    assert free.limit_for(Metric.PROJECTS) == 3
    assert free.limit_for(Metric.MEMBERS_PER_PROJECT) == 5
    assert all(enterprise.limit_for(metric) is None for metric in Metric)


async def test_first_use_creates_one_free_subscription(billing: BillingService) -> None:
    """A user never seen before is on the free plan, and stays the same subscription."""
    first, usage = await billing.subscription("ada")
    again, _ = await billing.subscription("ada")
    assert first.plan.id == "free"
    assert first.status == "active"
    assert first.latest_change is None
    assert again.id == first.id
    assert [item.metric for item in usage] == [
        Metric.PROJECTS,
        Metric.API_CALLS,
        Metric.STORAGE_BYTES,
    ]
    assert all(item.used == 0 for item in usage)


async def test_a_paid_upgrade_takes_effect_when_paid(billing: BillingService) -> None:
    """Paid (settling at once here): the project limit is pro's, the change APPLIED."""
    subscription = await upgrade(billing, "ada", "pro")
    assert subscription.plan.id == "pro"
    assert subscription.latest_change is not None
    assert subscription.latest_change.status == "applied"
    check = await billing.check_limits("ada", Metric.PROJECTS, 0)
    assert (check.plan_id, check.usage.limit) == ("pro", 50)


async def test_an_upgrade_without_payment_is_refused(billing: BillingService) -> None:
    """No token: INVALID_ARGUMENT naming payment_token, and nothing recorded."""
    with pytest.raises(InvalidArgument) as refused:
        await billing.change_subscription(change("ada", "pro"))
    assert refused.value.field == "payment_token"
    subscription, _ = await billing.subscription("ada")
    assert (subscription.plan.id, subscription.latest_change) == ("free", None)


async def test_an_unknown_token_declines_the_change_and_names_the_field(
    billing: BillingService,
) -> None:
    """The provider refuses the token: INVALID_ARGUMENT, and the change is DECLINED saying so."""
    with pytest.raises(InvalidArgument) as refused:
        await billing.change_subscription(change("ada", "pro", "tok_live_123"))
    assert refused.value.field == "payment_token"
    subscription, _ = await billing.subscription("ada")
    assert subscription.plan.id == "free"
    assert subscription.latest_change is not None
    assert subscription.latest_change.status == "declined"
    assert subscription.latest_change.reason.startswith("payment_token:")


async def test_changing_to_the_current_plan_changes_nothing(billing: BillingService) -> None:
    """ChangeSubscription to the active plan is idempotent, token or not (a lost reply's
    retry)."""
    before = await upgrade(billing, "ada", "pro")
    after = await upgrade(billing, "ada", "pro")
    assert after == before


async def test_a_downgrade_waits_for_the_end_of_the_period(
    billing: BillingService, clock: FakeClock
) -> None:
    """Free is SCHEDULED for December 1st; pro holds until then; the first use after it puts
    free in force."""
    await upgrade(billing, "ada", "pro")
    scheduled = await billing.change_subscription(change("ada", "free"))
    assert scheduled.plan.id == "pro"
    assert scheduled.latest_change is not None
    assert scheduled.latest_change.status == "scheduled"
    assert scheduled.latest_change.effective_at == scheduled.period.end
    clock.advance(DECEMBER_1 - clock.time() - 1)
    assert (await billing.check_limits("ada", Metric.PROJECTS, 0)).plan_id == "pro"
    clock.advance(1)
    assert (await billing.check_limits("ada", Metric.PROJECTS, 0)).plan_id == "free"
    subscription, _ = await billing.subscription("ada")
    assert subscription.latest_change is not None
    assert subscription.latest_change.status == "applied"


async def test_a_new_request_replaces_a_scheduled_downgrade(billing: BillingService) -> None:
    """Free scheduled, then enterprise paid: the downgrade is CANCELED, enterprise applies."""
    await upgrade(billing, "ada", "pro")
    scheduled = await billing.change_subscription(change("ada", "free"))
    assert scheduled.latest_change is not None
    upgraded = await upgrade(billing, "ada", "enterprise")
    assert upgraded.plan.id == "enterprise"
    assert upgraded.latest_change is not None
    assert upgraded.latest_change.id != scheduled.latest_change.id


async def test_downgrade_below_usage_is_refused_naming_the_metric(
    billing: BillingService,
) -> None:
    """With 4 projects on pro, moving to free (3 projects) is FAILED_PRECONDITION."""
    await upgrade(billing, "ada", "pro")
    for index in range(4):
        await billing.record_usage(
            UsageRequest(
                caller=CALLER,
                user_id="ada",
                metric=Metric.PROJECTS,
                quantity=1,
                idempotency_key=f"p{index}",
            )
        )
    with pytest.raises(FailedPrecondition, match="projects usage 4 exceeds its limit 3"):
        await billing.change_subscription(change("ada", "free"))
    subscription, _ = await billing.subscription("ada")
    assert subscription.plan.id == "pro"


async def test_downgrade_checks_the_largest_project_membership(billing: BillingService) -> None:
    """A project with more members than the smaller plan allows blocks the downgrade."""
    await upgrade(billing, "ada", "pro")
    await billing.record_usage(
        UsageRequest(
            caller=CALLER,
            user_id="ada",
            metric=Metric.MEMBERS_PER_PROJECT,
            quantity=6,
            idempotency_key="p1-members",
            scope_id="p1",
        )
    )
    with pytest.raises(FailedPrecondition, match="members_per_project"):
        await billing.change_subscription(change("ada", "free"))


async def test_a_complimentary_grant_needs_an_admin(billing: BillingService) -> None:
    """Only an admin puts a paid plan in force without payment."""
    with pytest.raises(PermissionDenied):
        await billing.change_subscription(change("ada", "enterprise", complimentary=True))
    granted = await billing.change_subscription(
        change("ada", "enterprise", complimentary=True, by_admin=True)
    )
    assert granted.plan.id == "enterprise"
    assert granted.latest_change is not None
    assert granted.latest_change.complimentary


async def test_without_a_provider_nothing_can_be_bought(billing_db: object) -> None:
    """PAYMENT_PROVIDER=none: an upgrade is FAILED_PRECONDITION saying why."""
    bare = BillingService(billing_db, clock=FakeClock())  # type: ignore[arg-type]
    with pytest.raises(FailedPrecondition, match="no payment provider"):
        await bare.change_subscription(change("ada", "pro", "tok_test_approve"))


async def test_unknown_plan_is_not_found(billing: BillingService) -> None:
    """A plan id that was never seeded is NOT_FOUND."""
    with pytest.raises(NotFound):
        await billing.change_subscription(change("ada", "platinum"))


async def test_a_change_whose_caller_gives_up_is_made_all_the_same(
    billing_db: Database, clock: FakeClock
) -> None:
    """The caller's cancellation (its deadline passed) does not cut ChangeSubscription short:
    the grant ends as it would have had the caller waited."""
    completions = Completions()
    billing = BillingService(billing_db, clock=clock, completions=completions)
    call = asyncio.create_task(
        billing.change_subscription(change("ada", "enterprise", complimentary=True, by_admin=True))
    )
    await asyncio.sleep(0)  # the call has handed its work over
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await completions.drain()
    subscription, _ = await billing.subscription("ada")
    assert subscription.plan.id == "enterprise"
