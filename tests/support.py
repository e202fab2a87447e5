"""Helpers every test layer shares (fixtures are in tests/conftest.py): fresh PostgreSQL
databases, free loopback ports, cheap password hashing, and letting ready tasks run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from tests.requirements import require_reachable

__all__ = ["CHEAP_ARGON2", "POSTGRES_ADMIN_DSN", "free_port", "postgres_database", "settle"]

POSTGRES_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CHEAP_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 1024,
    "argon2_parallelism": 1,
}
"""Auth's password hashing at its cheapest: tests log in often and hashing is not under test."""


@contextlib.contextmanager
def postgres_database(prefix: str = "zoptal_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database, as a ``postgresql+asyncpg`` URL; dropped afterwards."""
    require_reachable("PostgreSQL", "127.0.0.1", 5432)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(statement: str) -> None:
    """Run one administrative statement on its own loop in its own thread.

    A thread keeps this safe whatever event loop the calling test or fixture is running.
    """

    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


def free_port() -> int:
    """A loopback port nothing listens on now (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def settle() -> None:
    """Let every ready task run until none is ready (no time passes: for fake clocks)."""
    for _ in range(20):
        await asyncio.sleep(0)
