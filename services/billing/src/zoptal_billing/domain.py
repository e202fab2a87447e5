"""The values Billing's service layer takes and returns (no I/O, no protobuf)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from zoptal_billing.metering import BillingPeriod, Metric

__all__ = [
    "ChangeRequest",
    "LimitCheck",
    "MetricUsage",
    "Plan",
    "PlanChange",
    "Subscription",
    "UsageOutcome",
    "UsageRecord",
    "UsageRequest",
]


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    description: str
    price_minor_units: int
    currency: str
    billing_interval: str
    limits: Mapping[Metric, int | None]
    """Metric -> limit; None (or a missing metric) means unlimited."""

    def limit_for(self, metric: Metric) -> int | None:
        return self.limits.get(metric)


@dataclass(frozen=True, slots=True)
class PlanChange:
    """A requested plan change (see ``plan_changes.py`` for its states)."""

    id: str
    from_plan_id: str
    to_plan_id: str
    status: str
    requested_at: datetime
    effective_at: datetime | None
    payment_id: str
    amount_minor_units: int
    currency: str
    reason: str
    complimentary: bool


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """ChangeSubscription's request, with who asked (``requested_by``: a principal key)."""

    user_id: str
    plan_id: str
    requested_by: str
    payment_token: str = ""
    complimentary: bool = False
    by_admin: bool = False
    """Whether the requester is an admin (only admins may grant a plan as ``complimentary``)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    user_id: str
    plan: Plan
    status: str
    period: BillingPeriod
    created_at: datetime
    updated_at: datetime
    latest_change: PlanChange | None = None


@dataclass(frozen=True, slots=True)
class MetricUsage:
    """Usage of one metric against its limit, in the period it is counted in."""

    metric: Metric
    scope_id: str
    used: int
    limit: int | None
    period_start: datetime
    period_end: datetime

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class LimitCheck:
    allowed: bool
    usage: MetricUsage
    plan_id: str


@dataclass(frozen=True, slots=True)
class UsageRequest:
    user_id: str
    metric: Metric
    quantity: int
    idempotency_key: str
    caller: str
    """The principal key of the service recording it: keys are scoped to their caller."""
    scope_id: str = ""
    enforce_limit: bool = False


@dataclass(frozen=True, slots=True)
class UsageRecord:
    id: str
    user_id: str
    metric: Metric
    scope_id: str
    quantity: int
    idempotency_key: str
    caller: str | None
    """Who recorded it; None for records made before keys were scoped (any caller's)."""
    recorded_at: datetime
    period: str

    def matches(self, request: UsageRequest) -> bool:
        """Whether ``request`` is a retry of the call that stored this record."""
        return (
            self.metric is request.metric
            and self.scope_id == request.scope_id
            and self.quantity == request.quantity
        )


@dataclass(frozen=True, slots=True)
class UsageOutcome:
    record: UsageRecord
    usage: MetricUsage
    replayed: bool
