"""The real PostgreSQL and Redis the second end-to-end platform runs on, and their clean-up.

Redis uses a database index of its own (14): the integration suite flushes index 15 around every
test, which would wipe this platform's Celery queue and real-time counters mid-journey if both
suites ran at once on this shared machine.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg  # type: ignore[import-untyped]
import redis

from tests.support import POSTGRES_ADMIN_DSN

__all__ = [
    "E2E_POSTGRES_URL",
    "E2E_REDIS_DB",
    "drop_databases",
    "existing_databases",
    "flushed_redis_db",
    "redis_key_count",
]

E2E_POSTGRES_URL = POSTGRES_ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)
REDIS_SERVER = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
E2E_REDIS_DB = 14


def flushed_redis_db(index: int) -> str:
    """Empty Redis database ``index`` and return its URL."""
    url = f"{REDIS_SERVER}/{index}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


def drop_databases(prefix: str) -> list[str]:
    """Drop every database whose name starts with ``prefix``; returns the names dropped."""

    async def drop() -> list[str]:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
        try:
            names = [
                row["datname"]
                for row in await connection.fetch("SELECT datname FROM pg_database")
                if row["datname"].startswith(prefix)
            ]
            for name in names:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return names
        finally:
            await connection.close()

    return asyncio.run(drop())


def existing_databases(prefix: str) -> list[str]:
    """The names of the databases starting with ``prefix``, sorted."""

    async def list_them() -> list[str]:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
        try:
            rows = await connection.fetch("SELECT datname FROM pg_database")
        finally:
            await connection.close()
        return sorted(row["datname"] for row in rows if row["datname"].startswith(prefix))

    return asyncio.run(list_them())


def redis_key_count(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.dbsize())
    finally:
        client.close()
