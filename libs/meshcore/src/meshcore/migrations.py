"""Alembic, programmatically and once for every service.

A service's ``migrations/env.py`` is three lines::

    from meshcore.migrations import run_env
    from zoptal_auth.models import Base
    run_env(Base.metadata)

and its CLI (``python -m zoptal_auth migrate``) and embedded start call::

    run_migrations(settings.database_url, MIGRATIONS_DIR)          # from sync code
    await upgrade_database(settings.database_url, MIGRATIONS_DIR)  # from a running event loop

Both apply ``upgrade head`` over an async engine through ``run_sync``, sharing one connection
with Alembic (the "connection sharing" recipe). On PostgreSQL a transaction-scoped advisory lock
serialises replicas that start together, so only one of them migrates and the rest see ``head``.
Plain ``alembic upgrade head`` in a service folder works too: ``run_env`` then reads
``sqlalchemy.url`` from ``alembic.ini`` or ``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, text

__all__ = ["alembic_config", "run_env", "run_migrations", "upgrade_database"]

# One database belongs to one service, so one lock key per database is enough.
_MIGRATION_LOCK_KEY = zlib.crc32(b"meshcore:alembic-upgrade")


def alembic_config(database_url: str, script_location: str | Path) -> Any:
    """An Alembic ``Config`` for ``script_location`` without an ``alembic.ini`` file."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    # ConfigParser interpolates "%": escape it, since URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["database_url"] = database_url
    return config


async def upgrade_database(
    database_url: str, script_location: str | Path, revision: str = "head"
) -> None:
    """Apply migrations up to ``revision`` (default ``head``) from inside an event loop."""
    from alembic import command

    from meshcore.db import Database

    config = alembic_config(database_url, script_location)
    database = Database(database_url, application_name="meshcore-migrations")

    def upgrade(connection: Any) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with database.connection() as connection:
            if database.dialect == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            await connection.run_sync(upgrade)
    finally:
        await database.dispose()


def run_migrations(database_url: str, script_location: str | Path, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` from synchronous code (a CLI, a pre-start step).

    Called while an event loop is running in this thread, it migrates on a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(upgrade_database(database_url, script_location, revision))
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, upgrade_database(database_url, script_location, revision)).result()


def run_env(target_metadata: MetaData | None) -> None:
    """The whole body of a service's Alembic ``env.py``."""
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection, target_metadata)
        return
    url = (
        config.attributes.get("database_url")
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL or sqlalchemy.url in alembic.ini")
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=target_metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    # ``alembic upgrade`` from a shell: no loop is running here.
    asyncio.run(_migrate_online(url, target_metadata))


async def _migrate_online(url: str, target_metadata: MetaData | None) -> None:
    from meshcore.db import Database

    database = Database(url, application_name="meshcore-migrations")
    try:
        async with database.connection() as connection:
            await connection.run_sync(_migrate, target_metadata)
    finally:
        await database.dispose()


def _migrate(connection: Any, target_metadata: MetaData | None) -> None:
    from alembic import context

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
