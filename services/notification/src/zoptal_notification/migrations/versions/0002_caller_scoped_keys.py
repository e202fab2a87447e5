"""Idempotency keys are unique per caller and channel, not per channel only.

Another caller (an admin, another service) sending with a key someone already used on that
channel was answered with their notification, or refused with ALREADY_EXISTS, which also told
them the key was in use; now ``(caller, channel, idempotency_key)`` is unique, so it is a
notification of its own.

Existing notifications get ``caller = ''``: who sent them was never recorded (the sender is a
service account whose id only Auth knows), and no caller's scope is empty, so they keep their
rows and match no new send. The cost is one window: a send stored before this revision and
repeated after it by its sender (its first reply lost) is stored and delivered once more.
The column keeps ``''`` as its server default, so a replica still on the previous code during a
rolling upgrade stores its sends (under no caller) instead of failing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "notifications",
        sa.Column("caller", sa.String(length=128), server_default="", nullable=False),
    )
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notifications_channel_key", type_="unique")
        batch.create_unique_constraint(
            "uq_notifications_caller_channel_key", ["caller", "channel", "idempotency_key"]
        )


def downgrade() -> None:
    # Fails while two callers' notifications share a key on a channel: the old schema cannot
    # hold both.
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notifications_caller_channel_key", type_="unique")
        batch.create_unique_constraint(
            "uq_notifications_channel_key", ["channel", "idempotency_key"]
        )
        batch.drop_column("caller")
