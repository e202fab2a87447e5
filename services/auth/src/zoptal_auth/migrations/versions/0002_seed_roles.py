"""Seed the permission catalogue and the `user` and `admin` roles.

The data is written out here, not imported from application code, so this migration means the
same thing forever; later changes to the catalogue get their own migration.

Revision ID: 0002_seed_roles
Revises: 0001_schema
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_seed_roles"
down_revision: str | None = "0001_schema"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERMISSIONS = {
    "project:create": "create projects (the creator becomes owner)",
    "project:read": "read projects the caller may see",
    "project:update": "update projects the caller owns or edits",
    "project:delete": "delete projects the caller owns",
    "project:write": "services: change any project and its members",
    "billing:read": "read subscriptions, limits and plans",
    "billing:write": "services: record usage and change subscriptions",
    "analytics:read": "read analytics reports",
    "analytics:write": "track events and page views",
    "notification:read": "read notification history",
    "notification:send": "send email, SMS and push notifications",
    "user:read": "read any user's profile and permissions",
    "user:validate": "validate tokens on behalf of users",
    "service_account:create": "create service accounts",
}

ROLES = {
    "user": (
        "every registered user",
        [
            "project:create",
            "project:read",
            "project:update",
            "project:delete",
            "billing:read",
            "analytics:write",
            "notification:read",
        ],
    ),
    "admin": ("operators: every permission", sorted(PERMISSIONS)),
}


def upgrade() -> None:
    permissions = sa.table("permissions", sa.column("name"), sa.column("description"))
    roles = sa.table("roles", sa.column("name"), sa.column("description"))
    grants = sa.table("role_permissions", sa.column("role_name"), sa.column("permission_name"))
    op.bulk_insert(
        permissions, [{"name": name, "description": text} for name, text in PERMISSIONS.items()]
    )
    op.bulk_insert(
        roles, [{"name": name, "description": text} for name, (text, _) in ROLES.items()]
    )
    op.bulk_insert(
        grants,
        [
            {"role_name": role, "permission_name": permission}
            for role, (_, granted) in ROLES.items()
            for permission in granted
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM role_permissions WHERE role_name IN ('user', 'admin')")
    op.execute("DELETE FROM roles WHERE name IN ('user', 'admin')")
    names = ", ".join(f"'{name}'" for name in PERMISSIONS)
    op.execute(f"DELETE FROM permissions WHERE name IN ({names})")  # noqa: S608 - constants
