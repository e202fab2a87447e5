"""Reads that one SQL statement answers, run outside any transaction: one round trip each.

Through a session, a read costs more round trips than the statement itself (BEGIN, the
statement, COMMIT, and what the pool does at checkout), and more Python than the database
work: on a hot read RPC that overhead is most of the call. ``StatementReads`` is for those reads:

- PostgreSQL: the statement (SQLAlchemy Core) is compiled once, to the driver's SQL, and runs
  on an asyncpg connection held between reads (``meshcore.held_connections``: at most
  ``max_connections``, more concurrent reads wait for one) with no transaction around it, so it
  sees every commit made before it starts. asyncpg prepares it once per connection: a read is
  then one round trip, and no SQLAlchemy code runs at all.
- SQLite (embedded mode): the same statement through SQLAlchemy, on ``Database.connection()``.

Parameters go to the driver as given and values come back as the driver makes them (no
SQLAlchemy type processing), so it suits plain columns: text, integers, booleans, timestamps
(which SQLite returns without a zone). Rows are read by column label, as attributes
(``row.plan_id``). Connection failures are ``Unavailable``, as everywhere in ``meshcore.db``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import Select

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.held_connections import HeldDriverConnections

__all__ = ["StatementReads"]

AnySelect: TypeAlias = Select[*tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    statement: AnySelect  # kept so that the id it is cached under stays its own
    sql: str
    arguments: tuple[tuple[str, bool, Any], ...]
    """Per positional parameter: (name, from the caller?, the constant otherwise)."""

    def values(self, params: dict[str, Any]) -> list[Any]:
        try:
            return [params[name] if given else constant for name, given, constant in self.arguments]
        except KeyError as missing:
            raise TypeError(f"missing statement parameter {missing}") from None


class StatementReads:
    """One-statement reads on ``database`` (see the module's docstring); ``close()`` before
    the database is disposed."""

    def __init__(
        self,
        database: Database,
        *,
        max_connections: int = 4,
        max_idle_seconds: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._database = database
        self._connections = (
            None
            if database.is_sqlite
            else HeldDriverConnections(
                database,
                max_connections=max_connections,
                max_idle_seconds=max_idle_seconds,
                clock=clock,
            )
        )
        self._compiled: dict[int, _Compiled] = {}
        self._row_class = None if database.is_sqlite else _attribute_record_class()

    async def one(self, statement: AnySelect, **params: Any) -> Any | None:
        """The first row ``statement`` returns with ``params`` bound, or None."""
        if self._connections is None:
            async with self._database.connection() as connection:
                return (await connection.execute(statement, params)).first()
        compiled = self._compiled.get(id(statement)) or self._compile(statement)
        arguments = compiled.values(params)
        async with self._connections.use() as driver:
            return await driver.fetchrow(compiled.sql, *arguments, record_class=self._row_class)

    async def all(self, statement: AnySelect, **params: Any) -> list[Any]:
        """Every row ``statement`` returns with ``params`` bound."""
        if self._connections is None:
            async with self._database.connection() as connection:
                return list((await connection.execute(statement, params)).all())
        compiled = self._compiled.get(id(statement)) or self._compile(statement)
        arguments = compiled.values(params)
        async with self._connections.use() as driver:
            rows: list[Any] = await driver.fetch(
                compiled.sql, *arguments, record_class=self._row_class
            )
            return rows

    async def close(self) -> None:
        """Give the held connections back to the pool."""
        if self._connections is not None:
            await self._connections.close()

    def _compile(self, statement: AnySelect) -> _Compiled:
        compiled = statement.compile(dialect=self._database.engine.dialect)
        if "POSTCOMPILE" in compiled.string or compiled.positiontup is None:
            raise ValueError("StatementReads needs a statement without expanding parameters")
        arguments = tuple(
            (name, compiled.binds[name].required, compiled.params.get(name))
            for name in compiled.positiontup
        )
        entry = _Compiled(statement, compiled.string, arguments)
        self._compiled[id(statement)] = entry
        return entry


def _attribute_record_class() -> Any:
    """asyncpg's record with attribute access by column label, as SQLAlchemy's rows have."""
    import asyncpg  # type: ignore[import-untyped]  # the PostgreSQL driver

    class Row(asyncpg.Record):  # type: ignore[misc]
        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    return Row
