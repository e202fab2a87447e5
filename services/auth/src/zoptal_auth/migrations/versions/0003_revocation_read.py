"""Add the `revocation:read` permission (ListRevocations) and grant it to `admin`.

Services poll ListRevocations with their own service tokens; the catalogue entry lets an admin
create a service account (client credentials) that may do the same.

Revision ID: 0003_revocation_read
Revises: 0002_seed_roles
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_revocation_read"
down_revision: str | None = "0002_seed_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERMISSION = "revocation:read"
DESCRIPTION = "services: list revoked tokens (ListRevocations)"


def upgrade() -> None:
    permissions = sa.table("permissions", sa.column("name"), sa.column("description"))
    grants = sa.table("role_permissions", sa.column("role_name"), sa.column("permission_name"))
    op.bulk_insert(permissions, [{"name": PERMISSION, "description": DESCRIPTION}])
    op.bulk_insert(grants, [{"role_name": "admin", "permission_name": PERMISSION}])


def downgrade() -> None:
    op.execute(f"DELETE FROM role_permissions WHERE permission_name = '{PERMISSION}'")  # noqa: S608
    op.execute(f"DELETE FROM permissions WHERE name = '{PERMISSION}'")  # noqa: S608 - a constant
