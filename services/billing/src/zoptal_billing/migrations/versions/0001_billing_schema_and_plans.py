"""Plans (seeded), subscriptions, usage records and totals, the threshold notice outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GIB = 1024**3

# The seed is written out here, not imported from the application: a migration must keep meaning
# what it meant when it first ran, whatever later code says.
PLANS: list[dict[str, object]] = [
    {
        "id": "free",
        "name": "Free",
        "description": "For trying Zoptal out: a few small projects.",
        "price_minor_units": 0,
        "currency": "USD",
        "billing_interval": "month",
        "sort_order": 0,
    },
    {
        "id": "pro",
        "name": "Pro",
        "description": "For teams: many projects, larger teams, more API calls.",
        "price_minor_units": 2900,
        "currency": "USD",
        "billing_interval": "month",
        "sort_order": 1,
    },
    {
        "id": "enterprise",
        "name": "Enterprise",
        "description": "No limits.",
        "price_minor_units": 49900,
        "currency": "USD",
        "billing_interval": "month",
        "sort_order": 2,
    },
]

LIMITS: dict[str, dict[str, int | None]] = {
    "free": {
        "projects": 3,
        "members_per_project": 5,
        "api_calls": 10_000,
        "storage_bytes": 1 * GIB,
    },
    "pro": {
        "projects": 50,
        "members_per_project": 50,
        "api_calls": 1_000_000,
        "storage_bytes": 100 * GIB,
    },
    "enterprise": {
        "projects": None,
        "members_per_project": None,
        "api_calls": None,
        "storage_bytes": None,
    },
}


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("price_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billing_interval", sa.String(length=8), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    plan_limits = op.create_table(
        "plan_limits",
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("limit_value", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_limits_plan_id_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "metric", name=op.f("pk_plan_limits")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_subscriptions_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("user_id", name=op.f("uq_subscriptions_user_id")),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_usage_records_user_id_idempotency_key")
        ),
    )
    op.create_table(
        "usage_totals",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "user_id", "metric", "scope_id", "period", name=op.f("pk_usage_totals")
        ),
    )
    op.create_table(
        "threshold_notices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("threshold_percent", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("limit_value", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("abandoned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threshold_notices")),
        sa.UniqueConstraint(
            "user_id",
            "metric",
            "scope_id",
            "period",
            "threshold_percent",
            name="uq_threshold_notices_once_per_period",
        ),
    )
    op.create_index(
        "ix_threshold_notices_pending",
        "threshold_notices",
        ["delivered_at", "next_attempt_at"],
        unique=False,
    )
    op.bulk_insert(plans, PLANS)
    op.bulk_insert(
        plan_limits,
        [
            {"plan_id": plan_id, "metric": metric, "limit_value": limit}
            for plan_id, limits in LIMITS.items()
            for metric, limit in limits.items()
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_threshold_notices_pending", table_name="threshold_notices")
    op.drop_table("threshold_notices")
    op.drop_table("usage_totals")
    op.drop_table("usage_records")
    op.drop_table("subscriptions")
    op.drop_table("plan_limits")
    op.drop_table("plans")
