"""Plan changes (pending payment or the period's end), the test-mode payment ledger, and usage
idempotency keys scoped to the caller.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

``usage_records`` gains ``caller`` (the principal key of the service that recorded it) and its
unique constraint becomes (user, key, caller). Records already stored keep ``caller`` NULL: who
sent them is not known, and Billing treats them as every caller's (what the key meant when they
were recorded), so a retry that straddles the upgrade is still a replay, never a second count.

Batch mode: SQLite cannot drop a constraint in place, so Alembic copies the table there; on
PostgreSQL it is a plain ALTER.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN ('awaiting_payment', 'scheduled')")


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("caller", sa.String(length=128), nullable=True))
        batch.drop_constraint("uq_usage_records_user_id_idempotency_key", type_="unique")
        batch.create_unique_constraint(
            "uq_usage_records_caller_key", ["user_id", "idempotency_key", "caller"]
        )
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("latest_change_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("change_due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "plan_changes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("from_plan_id", sa.String(length=64), nullable=False),
        sa.Column("to_plan_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("complimentary", sa.Boolean(), nullable=False),
        sa.Column("amount_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payment_idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("payment_token", sa.String(length=255), nullable=True),
        sa.Column("payment_id", sa.String(length=128), nullable=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["to_plan_id"], ["plans.id"], name=op.f("fk_plan_changes_to_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_changes")),
    )
    op.create_index(
        "uq_plan_changes_one_open_per_user",
        "plan_changes",
        ["user_id"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_index("ix_plan_changes_open", "plan_changes", ["status", "effective_at"])
    op.create_table(
        "test_mode_payments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("amount_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("token", sa.String(length=255), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("decline_code", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settles_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_mode_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_test_mode_payments_idempotency_key")),
    )


def downgrade() -> None:
    op.drop_table("test_mode_payments")
    op.drop_index("ix_plan_changes_open", table_name="plan_changes")
    op.drop_index("uq_plan_changes_one_open_per_user", table_name="plan_changes")
    op.drop_table("plan_changes")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("change_due_at")
        batch.drop_column("latest_change_id")
    # Two callers' records under one key cannot both hold it under the old constraint: the first
    # recorded keeps the key, the later ones are kept under the key suffixed with their own id
    # (nothing recorded is lost; the totals already count them).
    op.execute(
        "UPDATE usage_records SET idempotency_key = "
        "substr(idempotency_key, 1, 91) || ':' || id "
        "WHERE id IN (SELECT later.id FROM usage_records later "
        "JOIN usage_records earlier ON later.user_id = earlier.user_id "
        "AND later.idempotency_key = earlier.idempotency_key "
        "AND (later.recorded_at > earlier.recorded_at "
        "OR (later.recorded_at = earlier.recorded_at AND later.id > earlier.id)))"
    )
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_constraint("uq_usage_records_caller_key", type_="unique")
        batch.create_unique_constraint(
            "uq_usage_records_user_id_idempotency_key", ["user_id", "idempotency_key"]
        )
        batch.drop_column("caller")
