"""meshcore.statement_reads on a real SQLite file and the real PostgreSQL: the same rows from
both, the latest commits seen, and on PostgreSQL one statement per read with no transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from meshcore.db import Database, new_metadata
from meshcore.errors import Unavailable
from meshcore.statement_reads import StatementReads
from sqlalchemy import DateTime, ForeignKey, String, bindparam, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = new_metadata()


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    plan: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Charge(Base):
    __tablename__ = "charges"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int]


_CHARGED = (
    select(func.sum(Charge.amount))
    .where(Charge.account_id == Account.id, Charge.kind == "usage")
    .scalar_subquery()
)
ACCOUNT = select(Account.id, Account.plan, Account.opened_at, _CHARGED.label("charged")).where(
    Account.id == bindparam("account_id")
)
OPENED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    await db.create_all(Base.metadata)
    async with db.session() as session:
        session.add(Account(id="ada", plan="free", opened_at=OPENED))
        await session.flush()
        session.add_all(
            [
                Charge(account_id="ada", kind="usage", amount=5),
                Charge(account_id="ada", kind="usage", amount=7),
                Charge(account_id="ada", kind="refund", amount=100),
            ]
        )
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def reads(database: Database) -> AsyncIterator[StatementReads]:
    statement_reads = StatementReads(database, max_connections=2)
    try:
        yield statement_reads
    finally:
        await statement_reads.close()


async def test_a_row_is_read_by_column_label(reads: StatementReads) -> None:
    row = await reads.one(ACCOUNT, account_id="ada")
    assert (row.id, row.plan, row.charged) == ("ada", "free", 12)
    opened = row.opened_at if row.opened_at.tzinfo else row.opened_at.replace(tzinfo=UTC)
    assert opened == OPENED
    with pytest.raises(AttributeError):
        _ = row.no_such_column


async def test_no_row_is_none(reads: StatementReads) -> None:
    assert await reads.one(ACCOUNT, account_id="nobody") is None


async def test_all_rows_come_back_in_the_statement_s_order(reads: StatementReads) -> None:
    charges = (
        select(Charge.kind, Charge.amount)
        .where(Charge.account_id == bindparam("account_id"))
        .order_by(Charge.amount.desc())
        .limit(bindparam("limit"))
    )
    rows = await reads.all(charges, account_id="ada", limit=2)
    assert [(row.kind, row.amount) for row in rows] == [("refund", 100), ("usage", 7)]
    assert await reads.all(charges, account_id="nobody", limit=2) == []


async def test_every_read_sees_the_latest_commit(database: Database, reads: StatementReads) -> None:
    assert (await reads.one(ACCOUNT, account_id="ada")).plan == "free"
    async with database.session() as session:
        (await session.get(Account, "ada")).plan = "pro"  # type: ignore[union-attr]
    assert (await reads.one(ACCOUNT, account_id="ada")).plan == "pro"


# -- PostgreSQL: compiled once, run on a held driver connection -------------------------------

postgres_only = pytest.mark.parametrize("database", ["postgres"], indirect=True)


@postgres_only
async def test_a_missing_parameter_is_named(reads: StatementReads) -> None:
    with pytest.raises(TypeError, match="account_id"):
        await reads.one(ACCOUNT)


@postgres_only
async def test_expanding_parameters_are_refused(reads: StatementReads) -> None:
    with pytest.raises(ValueError, match="expanding"):
        await reads.one(select(Account.id).where(Account.id.in_(["ada", "bob"])))


@postgres_only
async def test_each_read_is_the_statement_alone(database: Database, reads: StatementReads) -> None:
    """What the server is sent for each read: the statement and nothing else (no BEGIN, no
    COMMIT, no ping), on the one connection held between reads."""
    sent: list[str] = []
    await reads.one(ACCOUNT, account_id="ada")  # opens (and pings) the connection
    async with reads._connections.use() as driver:  # type: ignore[union-attr]
        driver.add_query_logger(lambda record: sent.append(record.query))
    for _ in range(3):
        await reads.one(ACCOUNT, account_id="ada")
    await asyncio.sleep(0.05)  # asyncpg calls query loggers soon after, not during
    assert len(sent) == 3
    assert all(query.startswith("SELECT accounts.id") for query in sent)
    assert database.engine.sync_engine.pool.checkedout() == 1


@postgres_only
async def test_a_connection_killed_between_reads_costs_at_most_one_read(
    database: Database, reads: StatementReads
) -> None:
    admin = await asyncpg.connect(database.url.replace("+asyncpg", ""))
    try:
        async with reads._connections.use() as driver:  # type: ignore[union-attr]
            pid = await driver.fetchval("SELECT pg_backend_pid()")
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        try:
            assert (await reads.one(ACCOUNT, account_id="ada")).plan == "free"
        except Unavailable:  # the driver had not yet read the server's goodbye
            assert (await reads.one(ACCOUNT, account_id="ada")).plan == "free"
    finally:
        await admin.close()
