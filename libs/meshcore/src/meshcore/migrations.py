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

``run_migrations`` first asks whether the database is already at head (``is_at_head``) without
Alembic or SQLAlchemy: the heads come from the revision files' ``revision``/``down_revision``
lines, the database's from ``alembic_version`` (stdlib ``sqlite3``, or one asyncpg query). On
every start but the first that is all a ``migrate`` does, in a tenth of the time (importing
Alembic and SQLAlchemy and opening an engine cost ~0.6 s a process).
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import os
import sqlite3
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from sqlalchemy import MetaData

__all__ = [
    "alembic_config",
    "head_revisions",
    "is_at_head",
    "run_env",
    "run_migrations",
    "upgrade_database",
]

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
    from sqlalchemy import text

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

    def migrate() -> None:
        if revision == "head" and is_at_head(database_url, script_location):
            return
        asyncio.run(upgrade_database(database_url, script_location, revision))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        migrate()
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrate).result()


def head_revisions(script_location: str | Path) -> frozenset[str]:
    """The revisions no other revision of ``script_location/versions`` builds on."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in Path(script_location, "versions").glob("*.py"):
        found = _revision_assignments(path)
        if "revision" not in found:
            continue
        revisions.add(found["revision"])
        down = found.get("down_revision")
        parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - parents)


def _revision_assignments(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(value)
    return values


def is_at_head(database_url: str, script_location: str | Path) -> bool:
    """Whether the database's ``alembic_version`` holds exactly the heads of
    ``script_location``. False when that cannot be told (no file, no table, unreachable):
    the caller then runs Alembic, which says what is wrong."""
    heads = head_revisions(script_location)
    try:
        current = _current_revisions(database_url)
    except Exception:  # any doubt: let Alembic look
        return False
    return bool(heads) and current == heads


def _current_revisions(database_url: str) -> frozenset[str] | None:
    scheme, _, rest = database_url.partition("://")
    if scheme.startswith("sqlite"):
        database = unquote(urlsplit(f"{scheme}://{rest}").path[1:].split("?")[0])
        if not database or database == ":memory:" or not Path(database).exists():
            return None
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            connection.close()
        return frozenset(row[0] for row in rows)
    if scheme.startswith("postgresql"):
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: one may run here
            return asyncio.run(_current_postgres_revisions(f"postgresql://{rest}"))
        return None  # inside a loop: say "cannot tell" (run_migrations calls from a thread)
    return None


async def _current_postgres_revisions(dsn: str) -> frozenset[str]:
    import asyncpg  # type: ignore[import-untyped]  # the PostgreSQL driver

    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await connection.fetch("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()
    return frozenset(row[0] for row in rows)


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
