"""Billing's tables: plans and their limits, subscriptions, usage and the notice outbox.

Invariants the schema itself enforces (so concurrency cannot break them):

* one subscription per user (``uq_subscriptions_user_id``);
* one usage record per (user, idempotency key, caller): the second insert of a caller's key
  loses the race at the unique index, whatever the timing (``uq_usage_records_caller_key``);
* at most one open plan change (awaiting payment or scheduled) per user
  (``uq_plan_changes_one_open_per_user``, a partial index);
* one test-mode payment per provider idempotency key (``test_mode_payments``);
* one threshold notice per (user, metric, scope, period, threshold): an email is queued at
  most once however often the crossing is replayed.
"""

from __future__ import annotations

from datetime import datetime

from meshcore.db import new_metadata
from meshcore.idempotency import CALLER_SCOPE_MAX_LENGTH
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "OPEN_CHANGE_STATUSES",
    "Base",
    "PlanChangeRow",
    "PlanLimitRow",
    "PlanRow",
    "SubscriptionRow",
    "TestModePaymentRow",
    "ThresholdNoticeRow",
    "UsageRecordRow",
    "UsageTotalRow",
]


class Base(DeclarativeBase):
    metadata = new_metadata()


class PlanRow(Base):
    """A subscription plan; seeded by the migrations, read-only at runtime."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    price_minor_units: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    billing_interval: Mapped[str] = mapped_column(String(8))
    sort_order: Mapped[int] = mapped_column(Integer)


class PlanLimitRow(Base):
    """A plan's limit on one metric; ``limit_value`` NULL means unlimited."""

    __tablename__ = "plan_limits"

    plan_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    limit_value: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SubscriptionRow(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[str] = mapped_column(String(64), ForeignKey("plans.id"))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latest_change_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    """The most recent ``plan_changes`` row of this user (shown by GetUserSubscription)."""
    change_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the open scheduled change falls due: read with the row on every usage call, so a
    downgrade at the period's end is applied without an extra query."""


OPEN_CHANGE_STATUSES = ("awaiting_payment", "scheduled")
"""Plan change states that are not settled yet (at most one per user)."""


class PlanChangeRow(Base):
    """A requested plan change: pending payment or the period's end, then applied or not."""

    __tablename__ = "plan_changes"
    __table_args__ = (
        Index(
            "uq_plan_changes_one_open_per_user",
            "user_id",
            unique=True,
            sqlite_where=text("status IN ('awaiting_payment', 'scheduled')"),
            postgresql_where=text("status IN ('awaiting_payment', 'scheduled')"),
        ),
        Index("ix_plan_changes_open", "status", "effective_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    from_plan_id: Mapped[str] = mapped_column(String(64))
    to_plan_id: Mapped[str] = mapped_column(String(64), ForeignKey("plans.id"))
    status: Mapped[str] = mapped_column(String(16))
    """``awaiting_payment``, ``scheduled``, ``applied``, ``declined`` or ``canceled``."""
    requested_by: Mapped[str] = mapped_column(String(CALLER_SCOPE_MAX_LENGTH))
    """The principal key (``user:<id>``, ``service:<id>``) that asked: the audit trail."""
    complimentary: Mapped[bool] = mapped_column(Boolean, default=False)
    amount_minor_units: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="")
    payment_idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    payment_token: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """Kept only until the provider has the payment (so a crash in between can submit it
    again), then cleared: a single-use token, never card data."""
    payment_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    effective_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TestModePaymentRow(Base):
    """The test-mode payment provider's own ledger (``payments_test_mode.py`` alone touches it).

    It stands for the state a real provider keeps on its side: Billing's service never reads it,
    it only talks to the provider through the ``payments`` port.
    """

    __tablename__ = "test_mode_payments"
    __test__ = False  # not a pytest class, despite the name

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200))
    amount_minor_units: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    token: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    """What the token decides: ``succeeded`` or ``declined`` (reported once ``settles_at``)."""
    decline_code: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    settles_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsageRecordRow(Base):
    """One accepted usage delta; the idempotency key's first result, kept for replays."""

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint(
            "user_id", "idempotency_key", "caller", name="uq_usage_records_caller_key"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    caller: Mapped[str | None] = mapped_column(String(CALLER_SCOPE_MAX_LENGTH), nullable=True)
    """The principal key of the service that recorded it (keys are the caller's own). NULL for
    records made before keys were scoped: those match any caller, as they did then."""
    metric: Mapped[str] = mapped_column(String(32))
    scope_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(BigInteger)
    period: Mapped[str] = mapped_column(String(8))
    """The billing period it was counted in (``YYYY-MM``)."""
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsageTotalRow(Base):
    """The running total of one metric: per period for counters, under ``gauge`` for gauges."""

    __tablename__ = "usage_totals"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ThresholdNoticeRow(Base):
    """Outbox of "you reached N % of a limit" emails, written in the usage's own transaction.

    A background dispatcher sends them through NotificationService and marks them delivered,
    so a usage that was acknowledged always gets its email, even if Notification was down.
    """

    __tablename__ = "threshold_notices"
    __table_args__ = (
        # An explicit name: the conventional one would pass PostgreSQL's 63-character limit.
        UniqueConstraint(
            "user_id",
            "metric",
            "scope_id",
            "period",
            "threshold_percent",
            name="uq_threshold_notices_once_per_period",
        ),
        Index("ix_threshold_notices_pending", "delivered_at", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(32))
    scope_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(8))
    threshold_percent: Mapped[int] = mapped_column(Integer)
    plan_id: Mapped[str] = mapped_column(String(64))
    used: Mapped[int] = mapped_column(BigInteger)
    limit_value: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    abandoned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """Set when a notice keeps failing permanently (for example the user no longer exists)."""
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
