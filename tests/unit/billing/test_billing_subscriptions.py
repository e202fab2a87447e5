"""Plans and subscriptions: seeded plans, the implicit free plan, upgrades and downgrades."""

from __future__ import annotations

import pytest
from meshcore.errors import FailedPrecondition, NotFound
from zoptal_billing.domain import UsageRequest
from zoptal_billing.metering import Metric
from zoptal_billing.service import BillingService


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
    assert again.id == first.id
    assert [item.metric for item in usage] == [
        Metric.PROJECTS,
        Metric.API_CALLS,
        Metric.STORAGE_BYTES,
    ]
    assert all(item.used == 0 for item in usage)


async def test_upgrade_takes_effect_immediately(billing: BillingService) -> None:
    """After moving to pro the project limit is pro's."""
    subscription = await billing.change_subscription("ada", "pro")
    assert subscription.plan.id == "pro"
    check = await billing.check_limits("ada", Metric.PROJECTS, 0)
    assert (check.plan_id, check.usage.limit) == ("pro", 50)


async def test_changing_to_the_current_plan_changes_nothing(billing: BillingService) -> None:
    """ChangeSubscription to the active plan is idempotent."""
    before = await billing.change_subscription("ada", "pro")
    after = await billing.change_subscription("ada", "pro")
    assert after.updated_at == before.updated_at
    assert after.id == before.id


async def test_downgrade_below_usage_is_refused_naming_the_metric(
    billing: BillingService,
) -> None:
    """With 4 projects on pro, moving to free (3 projects) is FAILED_PRECONDITION."""
    await billing.change_subscription("ada", "pro")
    for index in range(4):
        await billing.record_usage(
            UsageRequest(
                user_id="ada", metric=Metric.PROJECTS, quantity=1, idempotency_key=f"p{index}"
            )
        )
    with pytest.raises(FailedPrecondition, match="projects usage 4 exceeds its limit 3"):
        await billing.change_subscription("ada", "free")
    subscription, _ = await billing.subscription("ada")
    assert subscription.plan.id == "pro"


async def test_downgrade_checks_the_largest_project_membership(billing: BillingService) -> None:
    """A project with more members than the smaller plan allows blocks the downgrade."""
    await billing.change_subscription("ada", "pro")
    await billing.record_usage(
        UsageRequest(
            user_id="ada",
            metric=Metric.MEMBERS_PER_PROJECT,
            quantity=6,
            idempotency_key="p1-members",
            scope_id="p1",
        )
    )
    with pytest.raises(FailedPrecondition, match="members_per_project"):
        await billing.change_subscription("ada", "free")


async def test_unknown_plan_is_not_found(billing: BillingService) -> None:
    """A plan id that was never seeded is NOT_FOUND."""
    with pytest.raises(NotFound):
        await billing.change_subscription("ada", "platinum")
