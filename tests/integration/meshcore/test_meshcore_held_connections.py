"""HeldDriverConnections on the real PostgreSQL: reuse, replacement of dead or idle
connections, UNAVAILABLE for connection failures, and every connection back on close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from meshcore.db import Database
from meshcore.errors import Unavailable
from meshcore.held_connections import HeldDriverConnections
from meshcore.testing import FakeClock
from sqlalchemy import event

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    db = Database(postgres_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def admin(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def held(database: Database) -> AsyncIterator[HeldDriverConnections]:
    """Held connections with the default settings, closed after the test."""
    connections = HeldDriverConnections(database)
    try:
        yield connections
    finally:
        await connections.close()


async def _pid(held: HeldDriverConnections) -> int:
    async with held.use() as driver:
        return int(await driver.fetchval("SELECT pg_backend_pid()"))


async def test_a_busy_writer_keeps_using_the_same_connection(held: HeldDriverConnections) -> None:
    """No checkout between uses: the same server process answers every time."""
    pids = {await _pid(held) for _ in range(5)}
    assert len(pids) == 1
    assert held.held == 1


async def test_concurrent_uses_hold_one_connection_each(held: HeldDriverConnections) -> None:
    both_inside = asyncio.Barrier(2)

    async def use() -> int:
        async with held.use() as driver:
            await both_inside.wait()
            return int(await driver.fetchval("SELECT pg_backend_pid()"))

    first, second = await asyncio.gather(use(), use())
    assert first != second
    assert held.held == 2


async def test_a_failed_statement_keeps_the_connection(held: HeldDriverConnections) -> None:
    before = await _pid(held)
    with pytest.raises(asyncpg.UndefinedTableError):
        async with held.use() as driver:
            await driver.execute("SELECT * FROM no_such_table")
    assert await _pid(held) == before


async def test_a_connection_killed_during_a_use_is_unavailable_then_replaced(
    held: HeldDriverConnections, admin: asyncpg.Connection
) -> None:
    killed: list[int] = []

    async def query_after_the_server_dropped_us() -> None:
        async with held.use() as driver:
            killed.append(await driver.fetchval("SELECT pg_backend_pid()"))
            await admin.execute("SELECT pg_terminate_backend($1)", killed[0])
            await driver.fetchval("SELECT 1")

    with pytest.raises(Unavailable):
        await query_after_the_server_dropped_us()
    assert held.held == 0
    assert await _pid(held) != killed[0]


async def test_a_held_connection_the_server_closed_is_replaced_before_use(
    held: HeldDriverConnections, admin: asyncpg.Connection
) -> None:
    """A restart between batches costs no failed batch: the driver saw the close."""
    async with held.use() as driver:
        pid = await driver.fetchval("SELECT pg_backend_pid()")
        closed = asyncio.Event()
        driver.add_termination_listener(lambda _: closed.set())
    await admin.execute("SELECT pg_terminate_backend($1)", pid)
    async with asyncio.timeout(10):  # until the driver has read the server's goodbye
        await closed.wait()
    assert await _pid(held) != pid


async def test_a_connection_idle_too_long_goes_back_to_the_pool(database: Database) -> None:
    """After a quiet period the next use checks out a fresh, pinged connection."""
    clock = FakeClock()
    held = HeldDriverConnections(database, max_idle_seconds=30, clock=clock)
    checkins: list[object] = []
    event.listen(database.engine.sync_engine.pool, "checkin", lambda *_: checkins.append(1))
    try:
        await _pid(held)
        clock.advance(29)
        await _pid(held)
        assert checkins == []
        clock.advance(31)
        await _pid(held)
        assert len(checkins) == 1
    finally:
        await held.close()


async def test_close_returns_every_connection_to_the_pool(database: Database) -> None:
    held = HeldDriverConnections(database)
    await asyncio.gather(_pid(held), _pid(held))
    assert database.engine.sync_engine.pool.checkedout() >= 1
    await held.close()
    assert database.engine.sync_engine.pool.checkedout() == 0
    with pytest.raises(RuntimeError):
        await _pid(held)


async def test_an_unreachable_database_is_unavailable() -> None:
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/x", connect_timeout=1)
    held = HeldDriverConnections(db)
    try:
        with pytest.raises(Unavailable):
            await _pid(held)
    finally:
        await held.close()
        await db.dispose()


def test_sqlite_is_refused(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        HeldDriverConnections(Database("sqlite+aiosqlite:///:memory:"))


async def test_uses_beyond_max_connections_wait_for_a_held_one(database: Database) -> None:
    """Ten concurrent uses share two connections, in turn, and none waits at the pool."""
    held = HeldDriverConnections(database, max_connections=2)
    inside = 0
    most_inside = 0

    async def use() -> int:
        nonlocal inside, most_inside
        async with held.use() as driver:
            inside += 1
            most_inside = max(most_inside, inside)
            pid = int(await driver.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.01)"))
            inside -= 1
            return pid

    try:
        pids = await asyncio.gather(*(use() for _ in range(10)))
        assert len(set(pids)) == 2
        assert most_inside == 2
        assert database.engine.sync_engine.pool.checkedout() == 2
    finally:
        await held.close()
    assert database.engine.sync_engine.pool.checkedout() == 0


async def test_a_waiting_use_cancelled_leaves_the_turn_to_the_next(database: Database) -> None:
    held = HeldDriverConnections(database, max_connections=1)
    release = asyncio.Event()

    async def occupy() -> None:
        async with held.use():
            await release.wait()

    async def wait_in_line() -> int:
        async with held.use() as driver:
            return int(await driver.fetchval("SELECT 1"))

    try:
        occupant = asyncio.create_task(occupy())
        await asyncio.sleep(0.05)
        cancelled = asyncio.create_task(wait_in_line())
        served = asyncio.create_task(wait_in_line())
        await asyncio.sleep(0.01)
        cancelled.cancel()
        release.set()
        await occupant
        assert await asyncio.wait_for(served, 10) == 1
        assert cancelled.cancelled()
        assert held.held == 1
    finally:
        await held.close()


async def test_a_released_connection_makes_room_for_a_waiting_use(
    database: Database, admin: asyncpg.Connection
) -> None:
    """A connection dropped after a failure frees its slot: the next use opens a new one."""
    held = HeldDriverConnections(database, max_connections=1)
    waiting: list[asyncio.Task[int]] = []
    killed: list[int] = []

    async def fail_while_another_waits() -> None:
        async with held.use() as driver:
            waiting.append(asyncio.create_task(_pid(held)))
            killed.append(await driver.fetchval("SELECT pg_backend_pid()"))
            await admin.execute("SELECT pg_terminate_backend($1)", killed[0])
            await driver.fetchval("SELECT 1")

    try:
        with pytest.raises(Unavailable):
            await fail_while_another_waits()
        assert await asyncio.wait_for(waiting[0], 10) != killed[0]
    finally:
        await held.close()


async def test_close_fails_the_uses_still_waiting(database: Database) -> None:
    held = HeldDriverConnections(database, max_connections=1)
    async with held.use():
        waiting = asyncio.create_task(_pid(held))
        await asyncio.sleep(0.01)
        await held.close()
        with pytest.raises(RuntimeError, match="closed"):
            await waiting
    assert database.engine.sync_engine.pool.checkedout() == 0


def test_max_connections_must_be_positive(database: Database) -> None:
    with pytest.raises(ValueError, match="max_connections"):
        HeldDriverConnections(database, max_connections=0)
