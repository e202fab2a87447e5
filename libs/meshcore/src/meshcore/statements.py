"""Hot paths as prebuilt SQL statements: reads outside any transaction, and short transactions.

Through a session, a statement costs more round trips than itself (BEGIN, COMMIT, and what the
pool does at checkout) and more Python than the database's work on it: a session with one
statement costs about 0.5 ms of CPU on this kind of machine, three statements in one about
1.2 ms, where asyncpg alone needs 0.45 ms for the same three in a transaction
(docs/benchmarks.md). ``Statements`` is for the hot paths where that overhead is most of the
call:

- ``one`` / ``all`` / ``execute``: one statement with no transaction around it, one round trip:
  a read, which sees every commit made before it starts, or a write that commits by itself.
- ``transaction()``: a few statements committed together (or rolled back when the block
  raises), for a write path such as recording usage: BEGIN, the statements, COMMIT.

On PostgreSQL each statement (SQLAlchemy Core, built once and kept, e.g. at module level) is
compiled once to the driver's SQL and runs on an asyncpg connection held between uses
(``meshcore.held_connections``), where asyncpg prepares it once per connection; no SQLAlchemy
code runs per call. Reads share at most ``max_connections`` held connections; transactions have
their own ``max_transactions`` (a transaction waiting for a row lock must not hold up reads, and
a read is never needed inside one: use the transaction's own ``one``). On SQLite (embedded
mode) the same statements run through SQLAlchemy, on ``Database.connection()`` (whose ``BEGIN
IMMEDIATE`` serialises writers).

Parameters go to the driver as given and values come back as the driver makes them (no
SQLAlchemy type processing), so it suits plain columns: text, integers, booleans, timestamps
(which SQLite returns without a zone). Rows are read by column label, as attributes
(``row.plan_id``). Connection failures are ``Unavailable``, as everywhere in ``meshcore.db``; a
broken constraint is SQLAlchemy's ``IntegrityError`` on both databases, and a value the column
cannot hold (an integer overflow) its ``DataError`` on PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import sqlalchemy.exc
from sqlalchemy import ClauseElement, Executable
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.held_connections import HeldDriverConnections

__all__ = ["StatementRunner", "StatementTransaction", "Statements"]


@dataclass(frozen=True, slots=True)
class _Compiled:
    statement: Executable  # kept so that the id it is cached under stays its own
    sql: str
    arguments: tuple[tuple[str, bool, Any], ...]
    """Per positional parameter: (name, from the caller?, the constant otherwise)."""

    def values(self, params: dict[str, Any]) -> list[Any]:
        try:
            return [params[name] if given else constant for name, given, constant in self.arguments]
        except KeyError as missing:
            raise TypeError(f"missing statement parameter {missing}") from None


class StatementRunner(Protocol):
    """What runs statements: ``Statements`` (each statement on its own) and a
    ``StatementTransaction`` (all of them committed together)."""

    async def one(self, statement: Executable, **params: Any) -> Any | None: ...
    async def all(self, statement: Executable, **params: Any) -> list[Any]: ...
    async def execute(self, statement: Executable, **params: Any) -> int: ...


class Statements:
    """Prebuilt statements on ``database`` (see the module's docstring); ``close()`` before
    the database is disposed."""

    def __init__(
        self,
        database: Database,
        *,
        max_connections: int = 4,
        max_transactions: int = 4,
        max_idle_seconds: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._database = database
        self._reads: HeldDriverConnections | None = None
        self._writes: HeldDriverConnections | None = None
        if not database.is_sqlite:
            self._reads, self._writes = (
                HeldDriverConnections(
                    database, max_connections=limit, max_idle_seconds=max_idle_seconds, clock=clock
                )
                for limit in (max_connections, max_transactions)
            )
        self._compiled: dict[int, _Compiled] = {}
        self._row_class = None if database.is_sqlite else _attribute_record_class()

    async def one(self, statement: Executable, **params: Any) -> Any | None:
        """The first row ``statement`` returns with ``params`` bound, or None; a write commits
        by itself."""
        async with self._on_its_own() as runner:
            return await runner.one(statement, **params)

    async def all(self, statement: Executable, **params: Any) -> list[Any]:
        """Every row ``statement`` returns with ``params`` bound."""
        async with self._on_its_own() as runner:
            return await runner.all(statement, **params)

    async def execute(self, statement: Executable, **params: Any) -> int:
        """Run ``statement`` (one without RETURNING), committed by itself; how many rows it
        changed."""
        async with self._on_its_own() as runner:
            return await runner.execute(statement, **params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[StatementTransaction]:
        """Statements committed together when the block ends, rolled back if it raises."""
        if self._writes is None:
            async with self._database.connection() as connection:
                yield StatementTransaction(self, None, connection)
            return
        async with self._writes.use() as driver, driver.transaction():
            yield StatementTransaction(self, driver, None)

    @contextlib.asynccontextmanager
    async def _on_its_own(self) -> AsyncIterator[StatementTransaction]:
        """A runner for one statement outside any transaction (SQLite: in its own)."""
        if self._reads is None:
            async with self._database.connection() as connection:
                yield StatementTransaction(self, None, connection)
            return
        async with self._reads.use() as driver:
            yield StatementTransaction(self, driver, None)

    async def close(self) -> None:
        """Give the held connections back to the pool."""
        for connections in (self._reads, self._writes):
            if connections is not None:
                await connections.close()

    def _compile(self, statement: Executable) -> _Compiled:
        cached = self._compiled.get(id(statement))
        if cached is not None:
            return cached
        compiled = cast(
            SQLCompiler,
            cast(ClauseElement, statement).compile(dialect=self._database.engine.dialect),
        )
        if "POSTCOMPILE" in compiled.string or compiled.positiontup is None:
            raise ValueError("Statements needs a statement without expanding parameters")
        arguments = tuple(
            (name, compiled.binds[name].required, compiled.params.get(name))
            for name in compiled.positiontup
        )
        entry = _Compiled(statement, compiled.string, arguments)
        self._compiled[id(statement)] = entry
        return entry


class StatementTransaction:
    """The statements of one ``Statements.transaction()`` (or of one read outside any)."""

    def __init__(
        self, statements: Statements, driver: Any, connection: AsyncConnection | None
    ) -> None:
        self._statements = statements
        self._driver = driver  # asyncpg's connection (PostgreSQL)
        self._connection = connection  # SQLAlchemy's (SQLite)

    async def one(self, statement: Executable, **params: Any) -> Any | None:
        """The first row ``statement`` returns with ``params`` bound, or None."""
        if self._connection is not None:
            return (await self._connection.execute(statement, params)).first()
        return await self._run(self._driver.fetchrow, statement, params, rows=True)

    async def all(self, statement: Executable, **params: Any) -> list[Any]:
        """Every row ``statement`` returns with ``params`` bound."""
        if self._connection is not None:
            return list((await self._connection.execute(statement, params)).all())
        rows: list[Any] = await self._run(self._driver.fetch, statement, params, rows=True)
        return rows

    async def execute(self, statement: Executable, **params: Any) -> int:
        """Run ``statement`` (one without RETURNING); how many rows it changed."""
        if self._connection is not None:
            result = await self._connection.execute(statement, params)
            return int(getattr(result, "rowcount", 0) or 0)
        status: str = await self._run(self._driver.execute, statement, params, rows=False)
        # asyncpg answers the command tag: "UPDATE 3", "DELETE 0", "INSERT 0 1".
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def _run(
        self, call: Any, statement: Executable, params: dict[str, Any], *, rows: bool
    ) -> Any:
        """``call`` (an asyncpg method) with the compiled statement; asyncpg's constraint
        violations and bad values raised as SQLAlchemy's, which is what callers catch on SQLite
        (and through sessions) too."""
        compiled = self._statements._compile(statement)
        options = {"record_class": self._statements._row_class} if rows else {}
        try:
            return await call(compiled.sql, *compiled.values(params), **options)
        except Exception as error:
            translated = _as_sqlalchemy_error(error, compiled.sql)
            if translated is None:
                raise
            raise translated from error


def _as_sqlalchemy_error(error: Exception, sql: str) -> Exception | None:
    import asyncpg  # type: ignore[import-untyped]  # the PostgreSQL driver

    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return sqlalchemy.exc.IntegrityError(sql, None, error)
    if isinstance(error, asyncpg.DataError):
        return sqlalchemy.exc.DataError(sql, None, error)
    return None


def _attribute_record_class() -> Any:
    """asyncpg's record with attribute access by column label, as SQLAlchemy's rows have."""
    import asyncpg

    class Row(asyncpg.Record):  # type: ignore[misc]
        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    return Row
