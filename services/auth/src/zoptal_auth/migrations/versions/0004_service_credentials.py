"""Service credentials in a table of their own: one account, several secrets over its life.

A platform service rotates its credential without a failed call: the new secret is added while
the old one stays valid for a grace period. Each credential's id becomes the ``sid`` of the
tokens issued under it, so revoking a credential also revokes its live tokens. Existing
accounts keep their secret as their first credential.

Revision ID: 0004_service_credentials
Revises: 0003_revocation_read
Create Date: 2026-12-07
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from meshcore.db_types import UtcDateTime

revision: str = "0004_service_credentials"
down_revision: str | None = "0003_revocation_read"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    accounts = sa.table(
        "service_accounts",
        sa.column("id", sa.String),
        sa.column("secret_hash", sa.String),
        sa.column("created_at", UtcDateTime()),
    )
    existing = op.get_bind().execute(
        sa.select(accounts.c.id, accounts.c.secret_hash, accounts.c.created_at)
    )
    rows = [
        {"id": str(uuid.uuid4()), "account_id": row[0], "secret_hash": row[1], "created_at": row[2]}
        for row in existing
    ]
    # Before the credentials table exists: on SQLite the batch operation rebuilds the accounts
    # table (drop and rename), which would cascade-delete rows that already referred to it.
    with op.batch_alter_table("service_accounts") as batch:
        batch.drop_column("secret_hash")
    credentials = op.create_table(
        "service_credentials",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["service_accounts.id"],
            name=op.f("fk_service_credentials_account_id_service_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_credentials")),
    )
    op.create_index(
        op.f("ix_service_credentials_account_id"), "service_credentials", ["account_id"]
    )
    if rows:
        op.bulk_insert(credentials, rows)


def downgrade() -> None:
    # Each account gets back its newest credential that was not revoked; any other is dropped.
    credentials = sa.table(
        "service_credentials",
        sa.column("account_id", sa.String),
        sa.column("secret_hash", sa.String),
        sa.column("created_at", UtcDateTime()),
        sa.column("revoked_at", UtcDateTime()),
    )
    newest: dict[str, str] = {}
    for account_id, secret_hash in op.get_bind().execute(
        sa.select(credentials.c.account_id, credentials.c.secret_hash)
        .where(credentials.c.revoked_at.is_(None))
        .order_by(credentials.c.created_at)
    ):
        newest[account_id] = secret_hash
    op.drop_index(op.f("ix_service_credentials_account_id"), table_name="service_credentials")
    op.drop_table("service_credentials")
    with op.batch_alter_table("service_accounts") as batch:
        batch.add_column(
            sa.Column("secret_hash", sa.String(255), nullable=False, server_default="")
        )
    accounts = sa.table("service_accounts", sa.column("id", sa.String), sa.column("secret_hash"))
    for account_id, secret_hash in newest.items():
        op.execute(
            accounts.update().where(accounts.c.id == account_id).values(secret_hash=secret_hash)
        )
