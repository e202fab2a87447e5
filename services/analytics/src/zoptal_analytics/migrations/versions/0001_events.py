"""The events table.

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


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("anonymous_id", sa.String(length=128), nullable=False),
        sa.Column("actor", sa.String(length=136), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("occurred_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("page_url", sa.String(length=2048), nullable=False),
        sa.Column("page_title", sa.String(length=512), nullable=False),
        sa.Column("referrer", sa.String(length=2048), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
    )
    op.create_index("ix_events_occurred", "events", ["occurred_at_ms"])
    op.create_index("ix_events_name_occurred", "events", ["name", "occurred_at_ms"])
    op.create_index("ix_events_user_occurred", "events", ["user_id", "occurred_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_events_user_occurred", table_name="events")
    op.drop_index("ix_events_name_occurred", table_name="events")
    op.drop_index("ix_events_occurred", table_name="events")
    op.drop_table("events")
