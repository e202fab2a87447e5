"""The plan catalogue: the seeded plans and their limits, read once and cached."""

from __future__ import annotations

from meshcore.db import Database
from meshcore.errors import NotFound

from zoptal_billing.domain import Plan
from zoptal_billing.repository import BillingRepository

__all__ = ["DEFAULT_PLAN_ID", "PlanCatalogue"]

DEFAULT_PLAN_ID = "free"
"""The plan every user starts on (created on first use)."""


class PlanCatalogue:
    """Every plan, cheapest first (cached: plans change only with a migration and a restart)."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._by_id: dict[str, Plan] | None = None

    async def load(self) -> list[Plan]:
        """Fill the cache; call it before opening a transaction.

        Loading it inside another session would open a second connection, which on SQLite waits
        for the first one's write lock: a deadlock until the busy timeout.
        """
        if self._by_id is None:
            async with self._db.session() as session:
                repository = BillingRepository(session)
                rows = await repository.plans()
                limits = await repository.plan_limits()
            self._by_id = {
                row.id: Plan(
                    id=row.id,
                    name=row.name,
                    description=row.description,
                    price_minor_units=row.price_minor_units,
                    currency=row.currency,
                    billing_interval=row.billing_interval,
                    limits=limits.get(row.id, {}),
                )
                for row in rows
            }
        return list(self._by_id.values())

    def get(self, plan_id: str) -> Plan:
        """A loaded plan; NOT_FOUND naming it when there is no such plan."""
        assert self._by_id is not None, "call load() before a transaction"
        plan = self._by_id.get(plan_id)
        if plan is None:
            raise NotFound("plan", plan_id)
        return plan
