"""GetUserSubscription's and CheckSubscriptionLimits' reads on the real PostgreSQL: once the user
has a subscription and nothing is pending, they run no statement through a session (no
transaction: each is one statement on a held connection), and they see the latest usage."""

from __future__ import annotations

from typing import Any

import pytest
from meshcore.db import Database
from sqlalchemy import event
from zoptal_billing.domain import UsageRequest
from zoptal_billing.metering import Metric
from zoptal_billing.service import BillingService

pytestmark = pytest.mark.postgres


async def record(billing: BillingService, metric: Metric, quantity: int, key: str) -> None:
    await billing.record_usage(
        UsageRequest(
            caller="service:project",
            user_id="ada",
            metric=metric,
            quantity=quantity,
            idempotency_key=key,
            scope_id="project-1" if metric.is_scoped else "",
        )
    )


async def test_steady_reads_open_no_session(billing_pg: Database, billing: BillingService) -> None:
    await billing.subscription("ada")  # the first use creates the free subscription (a write)
    statements: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(billing_pg.engine.sync_engine, "before_cursor_execute", executed)
    try:
        subscription, _ = await billing.subscription("ada")
        check = await billing.check_limits("ada", Metric.PROJECTS, 1)
    finally:
        event.remove(billing_pg.engine.sync_engine, "before_cursor_execute", executed)
    assert statements == []
    assert (subscription.plan.id, check.plan_id, check.allowed) == ("free", "free", True)


async def test_reads_see_the_usage_recorded_before_them(billing: BillingService) -> None:
    await record(billing, Metric.PROJECTS, 2, "p")
    await record(billing, Metric.API_CALLS, 5, "a")
    await record(billing, Metric.MEMBERS_PER_PROJECT, 4, "m")
    _, usage = await billing.subscription("ada")
    assert {item.metric: item.used for item in usage} == {
        Metric.PROJECTS: 2,
        Metric.API_CALLS: 5,
        Metric.STORAGE_BYTES: 0,
    }
    projects = await billing.check_limits("ada", Metric.PROJECTS, 1)
    assert (projects.allowed, projects.usage.used, projects.usage.limit) == (True, 2, 3)
    assert not (await billing.check_limits("ada", Metric.PROJECTS, 2)).allowed
    members = await billing.check_limits("ada", Metric.MEMBERS_PER_PROJECT, 0, "project-1")
    assert members.usage.used == 4
    other = await billing.check_limits("ada", Metric.MEMBERS_PER_PROJECT, 0, "project-2")
    assert other.usage.used == 0
