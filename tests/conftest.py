"""Fixtures every test layer shares: the real PostgreSQL and Redis of this machine, and the
umask most shells and images run with (for tests of file modes).

Outside CI a missing server skips the tests that need it; with ``CI=true`` it fails them, so a
broken CI machine can never pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_timeout
from meshcore.testing import FakeClock

from tests.hang_report import reporting_tasks
from tests.replicas import Replica
from tests.requirements import require_reachable
from tests.support import postgres_database

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# A test that times out also says where its event loop's tasks wait (tests/hang_report.py).
pytest_timeout.timeout_sigalrm = reporting_tasks(pytest_timeout.timeout_sigalrm)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """umask 022 for one test, as most shells and images have it: new files 0644, folders 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, as a ``postgresql+asyncpg`` URL."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis, with a database index flushed before and after the test."""
    import redis

    require_reachable("Redis", "127.0.0.1", 6379)
    url = REDIS_URL.rsplit("/", 1)[0] + "/15"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sqlite_or_postgres_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test twice: on an embedded SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'service.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock for one test; a package whose tests need another start overrides this."""
    return FakeClock()


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    """Two echo replicas, ``r1`` and ``r2``, each on its own loopback port."""
    pair = [Replica("r1"), Replica("r2")]
    for replica in pair:
        await replica.start()
    try:
        yield pair
    finally:
        for replica in pair:
            await replica.stop(None)
