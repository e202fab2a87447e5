"""meshcore.db against real SQLite files and the real PostgreSQL of this machine."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy.exc
from meshcore.db import Database, new_metadata
from meshcore.errors import NotFound, Unavailable
from sqlalchemy import ForeignKey, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tests.support import free_port


class Base(DeclarativeBase):
    metadata = new_metadata()


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(100), unique=True)
    balance: Mapped[int] = mapped_column(default=0)


class Entry(Base):
    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The same behaviour is required from both back ends."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'folder' / 'svc.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    await db.create_all(Base.metadata)
    try:
        yield db
    finally:
        await db.dispose()


async def test_a_session_commits_when_the_block_ends(database: Database) -> None:
    """Rows added inside ``session()`` are visible to the next session."""
    async with database.session() as session:
        session.add(Account(email="a@example.com", balance=5))
    async with database.session() as session:
        emails = (await session.scalars(select(Account.email))).all()
    assert emails == ["a@example.com"]


async def test_a_session_rolls_back_when_the_block_raises(database: Database) -> None:
    """A domain error inside the block undoes the work and reaches the caller unchanged."""

    async def add_then_fail() -> None:
        async with database.session() as session:
            session.add(Account(email="gone@example.com"))
            await session.flush()
            raise NotFound("account", "x")

    with pytest.raises(NotFound):
        await add_then_fail()
    async with database.session() as session:
        assert (await session.scalars(select(Account))).all() == []


async def test_objects_stay_readable_after_commit(database: Database) -> None:
    """``expire_on_commit=False``: attributes need no reload after the session ended."""
    async with database.session() as session:
        account = Account(email="kept@example.com", balance=7)
        session.add(account)
    assert (account.email, account.balance, account.id) == ("kept@example.com", 7, account.id)
    assert account.id is not None


async def test_constraint_violations_are_not_turned_into_unavailable(database: Database) -> None:
    """An IntegrityError is the caller's business (e.g. ALREADY_EXISTS), not an outage."""
    async with database.session() as session:
        session.add(Account(email="dup@example.com"))
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with database.session() as session:
            session.add(Account(email="dup@example.com"))


async def test_foreign_keys_are_enforced(database: Database) -> None:
    """SQLite enforces foreign keys too (it does not by default)."""
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with database.session() as session:
            session.add(Entry(account_id=12345))


async def test_ping_answers_when_the_database_is_up(database: Database) -> None:
    """``ping()`` returns quietly against a working database."""
    await database.ping()


async def test_concurrent_read_modify_write_loses_no_update(database: Database) -> None:
    """Twenty concurrent increments of one row all count (SQLite: BEGIN IMMEDIATE)."""
    async with database.session() as session:
        session.add(Account(id=1, email="counter@example.com", balance=0))

    async def increment() -> None:
        async with database.session() as session:
            query = select(Account).where(Account.id == 1)
            if not database.is_sqlite:
                query = query.with_for_update()
            account = (await session.scalars(query)).one()
            await asyncio.sleep(0)  # let the other sessions interleave
            account.balance += 1

    await asyncio.gather(*(increment() for _ in range(20)))
    async with database.session() as session:
        assert (await session.get(Account, 1)).balance == 20  # type: ignore[union-attr]


async def test_sqlite_files_use_wal_and_their_folder_is_created(tmp_path: Path) -> None:
    """The data folder is created on demand and the journal is in WAL mode."""
    path = tmp_path / "a" / "b" / "svc.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.connection() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
    finally:
        await db.dispose()
    assert path.exists()
    assert (mode, keys) == ("wal", 1)


_OTHER_PROCESS_INSERTS = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("INSERT INTO accounts (email, balance) VALUES (?, 0)", (sys.argv[2],))
connection.close()
"""


def _insert_from_another_process(path: Path, email: str) -> None:
    """What ``service-identity rotate`` does to Auth's database: commit, then close."""
    subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS_INSERTS, str(path), email], check=True, timeout=60
    )


async def test_another_process_s_commits_stay_visible_once_the_pool_has_grown(
    tmp_path: Path,
) -> None:
    """Opening a pooled connection must not drop the locks the open ones hold on the file.

    If it does, another process that closes its connection believes it was the file's last
    user: it checkpoints, deletes the -wal and unlinks the -shm file under our connections,
    which go on in an orphaned WAL of their own: they never see that process's later commits,
    and no other connection sees theirs.
    """
    path = tmp_path / "svc.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.create_all(Base.metadata)
        async with db.engine.connect() as first:  # held while the pool opens a second one
            await first.execute(text("SELECT 1"))
            await first.commit()
            async with db.engine.connect() as second:
                await second.execute(text("SELECT 1"))
                await second.commit()
        _insert_from_another_process(path, "before@example.com")
        async with db.session() as session:
            session.add(Account(email="ours@example.com"))
        _insert_from_another_process(path, "after@example.com")
        async with db.session() as session:
            emails = set(await session.scalars(select(Account.email)))
        assert emails == {"before@example.com", "ours@example.com", "after@example.com"}
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_a_closed_postgres_port_fails_fast_with_unavailable() -> None:
    """Nothing listening: UNAVAILABLE within the connect timeout, for sessions and pings."""
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x", connect_timeout=2)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable, match="database unavailable"):
            async with db.session() as session:
                await session.execute(text("SELECT 1"))
        with pytest.raises(Unavailable):
            await db.ping()
    finally:
        await db.dispose()
    assert time.monotonic() - started < 3.0


@pytest.mark.postgres
async def test_an_unroutable_postgres_host_times_out_with_unavailable() -> None:
    """A host that never answers (blackholed) still gives UNAVAILABLE, bounded by the timeout."""
    db = Database("postgresql+asyncpg://postgres@10.255.255.1:5432/x", connect_timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await db.ping()
    finally:
        await db.dispose()
    assert time.monotonic() - started < 3.0


@pytest.mark.postgres
async def test_a_connection_killed_mid_session_becomes_unavailable(postgres_url: str) -> None:
    """The server dropping our connection (restart, failover) surfaces as UNAVAILABLE."""
    db = Database(postgres_url)
    admin = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))

    async def query_after_the_server_dropped_us() -> None:
        async with db.session() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await session.execute(text("SELECT 1"))

    try:
        with pytest.raises(Unavailable):
            await query_after_the_server_dropped_us()
        # The pool recovers on its own (the failure invalidated the dead connection).
        await db.ping()
    finally:
        await admin.close()
        await db.dispose()


async def _backend_pid(db: Database) -> int:
    async with db.connection() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("ping_idle_seconds", "wait"),
    [
        (0.05, 0.1),  # idle past ping_idle_seconds: pinged before use
        (3600, 0.5),  # in steady use, no ping due: the driver read the server's goodbye
    ],
    ids=["pinged-after-idle", "driver-saw-the-close"],
)
async def test_a_pooled_connection_the_server_dropped_is_replaced_before_use(
    postgres_url: str, ping_idle_seconds: float, wait: float
) -> None:
    db = Database(postgres_url, ping_idle_seconds=ping_idle_seconds)
    admin = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        pid = await _backend_pid(db)
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(wait)
        assert await _backend_pid(db) != pid
    finally:
        await admin.close()
        await db.dispose()


@pytest.mark.postgres
async def test_a_statement_over_the_timeout_is_cancelled_as_unavailable(postgres_url: str) -> None:
    """No call hangs on a stuck database: the statement timeout cancels it."""
    db = Database(postgres_url, statement_timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            async with db.session() as session:
                await session.execute(text("SELECT pg_sleep(5)"))
    finally:
        await db.dispose()
    assert time.monotonic() - started < 3.0
