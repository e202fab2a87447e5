"""Where Project's migrations live, and how to apply them."""

from __future__ import annotations

from pathlib import Path

from meshcore.migrations import upgrade_database

__all__ = ["MIGRATIONS_DIR", "upgrade"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


async def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema from inside a loop."""
    await upgrade_database(database_url, MIGRATIONS_DIR)
