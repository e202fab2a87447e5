"""The Alembic migrations build exactly the tables the models describe, and seed the roles."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from meshcore.db import Database
from meshcore.migrations import upgrade_database
from sqlalchemy import text
from zoptal_auth.app import MIGRATIONS_DIR
from zoptal_auth.models import Base


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models_and_seeds_roles(sqlite_or_postgres_url: str):
    """upgrade head twice is a no-op; autogenerate finds no drift; user/admin roles exist."""
    await upgrade_database(sqlite_or_postgres_url, MIGRATIONS_DIR)
    await upgrade_database(sqlite_or_postgres_url, MIGRATIONS_DIR)
    database = Database(sqlite_or_postgres_url)
    try:
        async with database.connection() as connection:
            assert await connection.run_sync(_differences) == []
            rows = await connection.execute(
                text(
                    "SELECT role_name, count(*) FROM role_permissions"
                    " GROUP BY role_name ORDER BY role_name"
                )
            )
            counts = dict(rows.all())
            total = await connection.scalar(text("SELECT count(*) FROM permissions"))
    finally:
        await database.dispose()
    assert counts["admin"] == total  # admin holds every permission
    assert 0 < counts["user"] < total
