"""The values Billing's service layer takes and returns (no I/O, no protobuf)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from zoptal_billing.metering import BillingPeriod, Metric

__all__ = [
    "LimitCheck",
    "MetricUsage",
    "Plan",
    "Subscription",
    "UsageOutcome",
    "UsageRecord",
    "UsageRequest",
    "as_utc",
]


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
class Subscription:
    id: str
    user_id: str
    plan: Plan
    status: str
    period: BillingPeriod
    created_at: datetime
    updated_at: datetime


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
