"""Upgrading a database that holds rows of an older schema, as a real upgrade meets them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meshcore.db import Database
from meshcore.migrations import upgrade_database
from sqlalchemy import text

__all__ = ["upgrade_with_rows"]


async def upgrade_with_rows(
    database_url: str,
    migrations_dir: Path,
    revision: str,
    statements: Sequence[tuple[str, Mapping[str, Any]]],
) -> None:
    """Migrate to ``revision``, run ``statements`` (SQL, parameters) there in one committed
    transaction, then migrate to head."""
    await upgrade_database(database_url, migrations_dir, revision)
    database = Database(database_url)
    try:
        async with database.connection() as connection:
            for statement, parameters in statements:
                await connection.execute(text(statement), dict(parameters))
            await connection.commit()
    finally:
        await database.dispose()
    await upgrade_database(database_url, migrations_dir)
