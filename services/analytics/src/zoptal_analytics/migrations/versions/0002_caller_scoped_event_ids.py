"""Event ids are unique per caller, not globally.

Another caller sending an ``event_id`` someone already used was acknowledged and silently
dropped; now ``(caller, event_id)`` is unique, so it is an event of its own.

Existing events get ``caller = ''``: who sent them was never recorded, and no caller's scope is
empty, so they keep their data and their (globally unique) ids and match no new call. The cost
is one window: a resend, by its first sender, of an event stored before this revision is stored
once more. The column keeps ``''`` as its server default, so a replica still on the previous
code during a rolling upgrade stores events (that belong to no caller) instead of failing;
its resends of an id it already stored fail that batch (its ``ON CONFLICT (event_id)`` has no
matching index any more), are not acknowledged, and succeed when retried on an upgraded replica.

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
        "events", sa.Column("caller", sa.String(length=128), server_default="", nullable=False)
    )
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_event_id", type_="unique")
        batch.create_unique_constraint(op.f("uq_events_caller_event_id"), ["caller", "event_id"])


def downgrade() -> None:
    # Fails while two callers' events share an id: the old schema cannot hold both.
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_caller_event_id", type_="unique")
        batch.create_unique_constraint(op.f("uq_events_event_id"), ["event_id"])
        batch.drop_column("caller")
