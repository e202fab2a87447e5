"""A create's ``request_id`` is unique per owner *and caller*, not per owner only.

An admin or a service creating a project for a user with a ``request_id`` the user (or another
caller) had used was answered with that other create's project, or refused with
ALREADY_EXISTS naming the key; now ``(owner_id, caller, request_id)`` is unique, so each
caller's key names its own create.

Existing projects get ``caller = 'user:<owner_id>'``: who created them was never recorded,
and nearly every create is the owner's own (users may create only for themselves), so the
owner's retry of a create made before this revision still returns its project. A retry by a
service or an admin of a create they made before it finds no key of theirs; it then stops at
the owner's name (ALREADY_EXISTS) and creates nothing twice. The column keeps ``''`` as its
server default, so a replica still on the previous code during a rolling upgrade can insert.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-12
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


@contextlib.contextmanager
def _members_kept_on_sqlite() -> Iterator[None]:
    """Keep ``project_members`` through a batch rebuild of ``projects`` on SQLite.

    SQLite changes a constraint by copying the table and dropping the old one, and with foreign
    keys on (they are, and the migration runs in a transaction, where the pragma cannot be
    turned off) dropping ``projects`` deletes every member row through ON DELETE CASCADE. The
    rows are copied aside first and put back once ``projects`` exists again.
    """
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    op.execute(sa.text("CREATE TEMP TABLE kept_members AS SELECT * FROM project_members"))
    yield
    op.execute(sa.text("INSERT OR IGNORE INTO project_members SELECT * FROM kept_members"))
    op.execute(sa.text("DROP TABLE kept_members"))


def upgrade() -> None:
    op.add_column(
        "projects", sa.Column("caller", sa.String(length=128), server_default="", nullable=False)
    )
    op.execute(sa.text("UPDATE projects SET caller = 'user:' || owner_id"))
    with _members_kept_on_sqlite(), op.batch_alter_table("projects") as batch:
        batch.drop_constraint("uq_projects_owner_id_request_id", type_="unique")
        batch.create_unique_constraint(
            op.f("uq_projects_owner_id_caller_request_id"), ["owner_id", "caller", "request_id"]
        )


def downgrade() -> None:
    # Fails while two callers' projects of one owner share a request_id: the old schema
    # cannot hold both.
    with _members_kept_on_sqlite(), op.batch_alter_table("projects") as batch:
        batch.drop_constraint("uq_projects_owner_id_caller_request_id", type_="unique")
        batch.create_unique_constraint(
            op.f("uq_projects_owner_id_request_id"), ["owner_id", "request_id"]
        )
        batch.drop_column("caller")
