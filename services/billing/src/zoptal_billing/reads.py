"""Billing's hot reads, one statement each, outside any transaction.

CheckSubscriptionLimits runs before every CreateProject and clients poll GetUserSubscription.
Through a session each cost a transaction and one query per table (the subscription, its latest
plan change, each usage total); here each is one statement (``meshcore.statements``): the
subscription with its latest change and the usage totals the reply reports. Under PostgreSQL's
READ COMMITTED every statement of that session saw its own snapshot anyway, so one statement
is, if anything, more consistent. The free subscription made on first use is one statement
too (``repository.UsageLedger``); settling a plan change keeps its session (``service.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from meshcore.statements import Statements
from meshcore.timeutil import as_utc
from sqlalchemy import ScalarSelect, bindparam, select

from zoptal_billing.domain import PlanChange
from zoptal_billing.metering import GAUGE_PERIOD, USER_WIDE_METRICS, Metric
from zoptal_billing.models import PlanChangeRow, SubscriptionRow, UsageTotalRow

__all__ = ["SUBSCRIPTION_COLUMNS", "BillingReads", "SubscriptionColumns", "SubscriptionView"]


class SubscriptionColumns(Protocol):
    """A subscription as the reads return it (``SubscriptionRow`` has the same attributes)."""

    @property
    def id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def plan_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def change_due_at(self) -> datetime | None: ...


def _used(metric: Any, scope_id: Any, period: Any) -> ScalarSelect[int]:
    """The subscription's user's total of one metric (NULL when nothing was recorded)."""
    return (
        select(UsageTotalRow.used)
        .where(
            UsageTotalRow.user_id == SubscriptionRow.user_id,
            UsageTotalRow.metric == metric,
            UsageTotalRow.scope_id == scope_id,
            UsageTotalRow.period == period,
        )
        .scalar_subquery()
    )


SUBSCRIPTION_COLUMNS = (
    "id",
    "user_id",
    "plan_id",
    "status",
    "created_at",
    "updated_at",
    "change_due_at",
)
"""What a read returns of a subscription: the attributes of ``SubscriptionColumns``."""
_SUBSCRIPTION = tuple(getattr(SubscriptionRow, name) for name in SUBSCRIPTION_COLUMNS)
_CHANGE_FIELDS = (
    "id",
    "from_plan_id",
    "to_plan_id",
    "status",
    "created_at",
    "effective_at",
    "payment_id",
    "amount_minor_units",
    "currency",
    "reason",
    "complimentary",
)
_USER_WIDE_LABELS = {metric: f"used_{metric.value}" for metric in USER_WIDE_METRICS}

SUBSCRIPTION_VIEW = (
    select(
        *_SUBSCRIPTION,
        *(getattr(PlanChangeRow, name).label(f"change_{name}") for name in _CHANGE_FIELDS),
        *(
            _used(
                metric.value, "", bindparam("period") if metric.is_counter else GAUGE_PERIOD
            ).label(label)
            for metric, label in _USER_WIDE_LABELS.items()
        ),
    )
    .outerjoin(PlanChangeRow, PlanChangeRow.id == SubscriptionRow.latest_change_id)
    .where(SubscriptionRow.user_id == bindparam("user_id"))
)
"""GetUserSubscription's statement: the subscription, its latest change, user-wide usage."""

USAGE_VIEW = select(
    *_SUBSCRIPTION,
    _used(bindparam("metric"), bindparam("scope_id"), bindparam("period")).label("used"),
).where(SubscriptionRow.user_id == bindparam("user_id"))
"""CheckSubscriptionLimits' statement: the subscription and the total of one metric."""


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    subscription: SubscriptionColumns
    latest_change: PlanChange | None
    used: Mapping[Metric, int]
    """Each of ``USER_WIDE_METRICS``: its total in the period the reads were asked about."""


class BillingReads:
    def __init__(self, reads: Statements) -> None:
        self._reads = reads

    async def subscription(self, user_id: str, period_key: str) -> SubscriptionView | None:
        """The user's subscription as GetUserSubscription shows it; None before first use."""
        row = await self._reads.one(SUBSCRIPTION_VIEW, user_id=user_id, period=period_key)
        if row is None:
            return None
        used = {metric: getattr(row, label) or 0 for metric, label in _USER_WIDE_LABELS.items()}
        return SubscriptionView(row, _latest_change(row), used)

    async def usage(
        self, user_id: str, metric: Metric, scope_id: str, total_period: str
    ) -> tuple[SubscriptionColumns, int] | None:
        """The user's subscription and total of ``metric`` under ``total_period`` (a period key,
        or ``GAUGE_PERIOD``); None before first use."""
        row = await self._reads.one(
            USAGE_VIEW,
            user_id=user_id,
            metric=metric.value,
            scope_id=scope_id,
            period=total_period,
        )
        return None if row is None else (row, row.used or 0)


def _latest_change(row: Any) -> PlanChange | None:
    if row.change_id is None:
        return None
    effective_at = row.change_effective_at
    return PlanChange(
        id=row.change_id,
        from_plan_id=row.change_from_plan_id,
        to_plan_id=row.change_to_plan_id,
        status=row.change_status,
        requested_at=as_utc(row.change_created_at),
        effective_at=None if effective_at is None else as_utc(effective_at),
        payment_id=row.change_payment_id or "",
        amount_minor_units=row.change_amount_minor_units,
        currency=row.change_currency,
        reason=row.change_reason,
        complimentary=row.change_complimentary,
    )
