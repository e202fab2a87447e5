"""Billing's tables: plans and their limits, subscriptions, usage and the notice outbox.

Invariants the schema itself enforces (so concurrency cannot break them):

* one subscription per user (``uq_subscriptions_user_id``);
* one usage record per (user, idempotency key): the second insert of a key loses the race at
  the unique index, whatever the timing (``uq_usage_records_user_id_idempotency_key``);
* one threshold notice per (user, metric, scope, period, threshold): an email is queued at
  most once however often the crossing is replayed.
"""

from __future__ import annotations

from datetime import datetime

from meshcore.db import new_metadata
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "PlanLimitRow",
    "PlanRow",
    "SubscriptionRow",
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


class UsageRecordRow(Base):
    """One accepted usage delta; the idempotency key's first result, kept for replays."""

    __tablename__ = "usage_records"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128))
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
