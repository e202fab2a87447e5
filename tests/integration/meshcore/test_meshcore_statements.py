"""meshcore.statements on a real SQLite file and the real PostgreSQL: the same rows from
both, the latest commits seen, on PostgreSQL one statement per read with no transaction, and
transactions that commit together or not at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy.exc
from meshcore.db import Database, new_metadata
from meshcore.errors import Unavailable
from meshcore.statements import Statements
from sqlalchemy import DateTime, ForeignKey, String, bindparam, func, insert, select, update
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
async def reads(database: Database) -> AsyncIterator[Statements]:
    statements = Statements(database, max_connections=2)
    try:
        yield statements
    finally:
        await statements.close()


async def test_a_row_is_read_by_column_label(reads: Statements) -> None:
    row = await reads.one(ACCOUNT, account_id="ada")
    assert (row.id, row.plan, row.charged) == ("ada", "free", 12)
    opened = row.opened_at if row.opened_at.tzinfo else row.opened_at.replace(tzinfo=UTC)
    assert opened == OPENED
    with pytest.raises(AttributeError):
        _ = row.no_such_column


async def test_no_row_is_none(reads: Statements) -> None:
    assert await reads.one(ACCOUNT, account_id="nobody") is None


async def test_all_rows_come_back_in_the_statement_s_order(reads: Statements) -> None:
    charges = (
        select(Charge.kind, Charge.amount)
        .where(Charge.account_id == bindparam("account_id"))
        .order_by(Charge.amount.desc())
        .limit(bindparam("limit"))
    )
    rows = await reads.all(charges, account_id="ada", limit=2)
    assert [(row.kind, row.amount) for row in rows] == [("refund", 100), ("usage", 7)]
    assert await reads.all(charges, account_id="nobody", limit=2) == []


async def test_every_read_sees_the_latest_commit(database: Database, reads: Statements) -> None:
    assert (await reads.one(ACCOUNT, account_id="ada")).plan == "free"
    async with database.session() as session:
        (await session.get(Account, "ada")).plan = "pro"  # type: ignore[union-attr]
    assert (await reads.one(ACCOUNT, account_id="ada")).plan == "pro"


# -- transactions -------------------------------------------------------------------------------

ADD_CHARGE = insert(Charge).values(
    account_id=bindparam("account_id"), kind=bindparam("kind"), amount=bindparam("amount")
)
RAISE_PLAN = update(Account).where(Account.id == bindparam("account_id")).values(plan="pro")
LOCKED = select(Account.plan).where(Account.id == bindparam("account_id")).with_for_update()


async def test_a_transaction_commits_its_statements_together(reads: Statements) -> None:
    async with reads.transaction() as transaction:
        assert (await transaction.one(LOCKED, account_id="ada")).plan == "free"
        assert await transaction.execute(RAISE_PLAN, account_id="ada") == 1
        assert await transaction.execute(RAISE_PLAN, account_id="nobody") == 0
        await transaction.execute(ADD_CHARGE, account_id="ada", kind="usage", amount=30)
        assert (await transaction.one(ACCOUNT, account_id="ada")).charged == 42  # its own write
    row = await reads.one(ACCOUNT, account_id="ada")
    assert (row.plan, row.charged) == ("pro", 42)


async def test_a_statement_on_its_own_commits_by_itself(reads: Statements) -> None:
    assert await reads.execute(RAISE_PLAN, account_id="ada") == 1
    assert await reads.execute(RAISE_PLAN, account_id="nobody") == 0
    added = (
        insert(Charge)
        .values(
            account_id=bindparam("account_id"), kind=bindparam("kind"), amount=bindparam("amount")
        )
        .returning(Charge.amount)
    )
    assert (await reads.one(added, account_id="ada", kind="usage", amount=30)).amount == 30
    row = await reads.one(ACCOUNT, account_id="ada")
    assert (row.plan, row.charged) == ("pro", 42)


async def test_a_transaction_that_raises_leaves_nothing(reads: Statements) -> None:
    async def change_then_fail() -> None:
        async with reads.transaction() as transaction:
            await transaction.execute(RAISE_PLAN, account_id="ada")
            await transaction.execute(ADD_CHARGE, account_id="ada", kind="usage", amount=30)
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        await change_then_fail()
    row = await reads.one(ACCOUNT, account_id="ada")
    assert (row.plan, row.charged) == ("free", 12)


async def test_a_broken_constraint_is_an_integrity_error_on_both_databases(
    reads: Statements,
) -> None:
    async def charge_nobody() -> None:
        async with reads.transaction() as transaction:
            await transaction.execute(RAISE_PLAN, account_id="ada")
            await transaction.execute(ADD_CHARGE, account_id="nobody", kind="usage", amount=1)

    with pytest.raises(sqlalchemy.exc.IntegrityError):
        await charge_nobody()
    assert (await reads.one(ACCOUNT, account_id="ada")).plan == "free"
    async with reads.transaction() as transaction:  # the connection is usable again
        await transaction.execute(RAISE_PLAN, account_id="ada")
    assert (await reads.one(ACCOUNT, account_id="ada")).plan == "pro"


async def test_concurrent_transactions_on_one_row_are_serialised_by_its_lock(
    reads: Statements,
) -> None:
    """Read-modify-write under the row's lock (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on
    SQLite): no increment is lost."""
    charged = select(func.count(Charge.id)).where(Charge.account_id == bindparam("account_id"))

    async def charge_once() -> None:
        async with reads.transaction() as transaction:
            await transaction.one(LOCKED, account_id="ada")
            count = (await transaction.all(charged, account_id="ada"))[0][0]
            await asyncio.sleep(0)  # let the others run into the lock
            await transaction.execute(ADD_CHARGE, account_id="ada", kind=f"n{count}", amount=0)

    await asyncio.gather(*(charge_once() for _ in range(8)))
    kinds = await reads.all(select(Charge.kind).where(Charge.kind.like("n%")))
    assert sorted(row.kind for row in kinds) == sorted(f"n{n}" for n in range(3, 11))


# -- PostgreSQL: compiled once, run on a held driver connection -------------------------------

postgres_only = pytest.mark.parametrize("database", ["postgres"], indirect=True)


@postgres_only
async def test_a_missing_parameter_is_named(reads: Statements) -> None:
    with pytest.raises(TypeError, match="account_id"):
        await reads.one(ACCOUNT)


@postgres_only
async def test_expanding_parameters_are_refused(reads: Statements) -> None:
    with pytest.raises(ValueError, match="expanding"):
        await reads.one(select(Account.id).where(Account.id.in_(["ada", "bob"])))


@postgres_only
async def test_each_read_is_the_statement_alone(database: Database, reads: Statements) -> None:
    """What the server is sent for each read: the statement and nothing else (no BEGIN, no
    COMMIT, no ping), on the one connection held between reads."""
    sent: list[str] = []
    await reads.one(ACCOUNT, account_id="ada")  # opens (and pings) the connection
    async with reads._reads.use() as driver:  # type: ignore[union-attr]
        driver.add_query_logger(lambda record: sent.append(record.query))
    for _ in range(3):
        await reads.one(ACCOUNT, account_id="ada")
    await asyncio.sleep(0.05)  # asyncpg calls query loggers soon after, not during
    assert len(sent) == 3
    assert all(query.startswith("SELECT accounts.id") for query in sent)
    assert database.engine.sync_engine.pool.checkedout() == 1


@postgres_only
async def test_a_transaction_is_begin_its_statements_and_commit(reads: Statements) -> None:
    sent: list[str] = []
    async with reads.transaction() as transaction:  # opens (and pings) the connection
        await transaction.execute(RAISE_PLAN, account_id="ada")
    async with reads._writes.use() as driver:  # type: ignore[union-attr]
        driver.add_query_logger(lambda record: sent.append(record.query.split()[0]))
    async with reads.transaction() as transaction:
        await transaction.one(LOCKED, account_id="ada")
        await transaction.execute(RAISE_PLAN, account_id="ada")
    await asyncio.sleep(0.05)
    assert sent == ["BEGIN;", "SELECT", "UPDATE", "COMMIT;"]


@postgres_only
async def test_a_connection_killed_between_reads_costs_at_most_one_read(
    database: Database, reads: Statements
) -> None:
    admin = await asyncpg.connect(database.url.replace("+asyncpg", ""))
    try:
        async with reads._reads.use() as driver:  # type: ignore[union-attr]
            pid = await driver.fetchval("SELECT pg_backend_pid()")
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        try:
            assert (await reads.one(ACCOUNT, account_id="ada")).plan == "free"
        except Unavailable:  # the driver had not yet read the server's goodbye
            assert (await reads.one(ACCOUNT, account_id="ada")).plan == "free"
    finally:
        await admin.close()
