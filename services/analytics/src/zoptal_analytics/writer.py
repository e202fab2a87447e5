"""Stores a batch of events atomically and says which ones were new.

An ``event_id`` that its caller already stored (a client resending after a lost reply) is
skipped, so a retry never counts twice, and the events that were new go on to the real-time
counters. Ids are unique per caller (``(caller, event_id)``): the same id from another caller
is a new event, stored like any other.

PostgreSQL: the batch is first sent with COPY, the fastest way in (binary rows, one statement,
a tenth of the client CPU of array parameters). COPY cannot skip duplicates, so a batch holding
a (caller, id) pair that exists makes it fail as a whole, which is rare (only resends carry old
ids); that batch then goes through ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING
RETURNING``, which skips them and names the rows it stored. Each statement commits on its own:
either all of a batch is stored or none of it.

SQLite (embedded mode): one ``INSERT ... ON CONFLICT DO NOTHING RETURNING``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from meshcore.db import Database
from meshcore.held_connections import HeldDriverConnections
from sqlalchemy.dialects import sqlite

from zoptal_analytics.domain import EventRecord
from zoptal_analytics.models import Event

__all__ = ["EventWriter"]

# The stored columns, in the order rows are sent, with the PostgreSQL type of each.
_COLUMN_TYPES = {
    "caller": "varchar",
    "event_id": "varchar",
    "name": "varchar",
    "user_id": "varchar",
    "anonymous_id": "varchar",
    "actor": "varchar",
    "session_id": "varchar",
    "occurred_at_ms": "bigint",
    "received_at_ms": "bigint",
    "properties": "json",
    "page_url": "varchar",
    "page_title": "varchar",
    "referrer": "varchar",
}
_COLUMNS = list(_COLUMN_TYPES)
_ARRAYS = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(_COLUMN_TYPES.values(), 1))
# Built only from the constant map above, never from input.
_INSERT_SKIPPING_DUPLICATES = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}) SELECT * FROM unnest({_ARRAYS}) "  # noqa: S608
    "ON CONFLICT (caller, event_id) DO NOTHING RETURNING caller, event_id"
)
_NO_PROPERTIES = "{}"


def _row(event: EventRecord) -> tuple[Any, ...]:
    """``event`` as a row of ``_COLUMNS``; properties as JSON text, as asyncpg sends json."""
    properties = (
        json.dumps(event.properties, separators=(",", ":")) if event.properties else _NO_PROPERTIES
    )
    return (
        event.caller, event.event_id, event.name, event.user_id, event.anonymous_id, event.actor,
        event.session_id, event.occurred_at_ms, event.received_at_ms, properties,
        event.page_url, event.page_title, event.referrer,
    )  # fmt: skip


_Key = tuple[str, str]
"""``(caller, event_id)``: what identifies an event."""


def _first_of_each(events: Sequence[EventRecord], stored: Collection[_Key]) -> list[EventRecord]:
    """The events whose key is in ``stored``, each key once (a batch may repeat one)."""
    seen: set[_Key] = set()
    new = []
    for event in events:
        key = (event.caller, event.event_id)
        if key in stored and key not in seen:
            seen.add(key)
            new.append(event)
    return new


class EventWriter:
    """The ingest buffer's writer, on the service's database. ``close()`` before the
    database is disposed."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._connections = None if database.is_sqlite else HeldDriverConnections(database)

    async def close(self) -> None:
        if self._connections is not None:
            await self._connections.close()

    async def insert_new(self, events: Sequence[EventRecord]) -> list[EventRecord]:
        """Store ``events`` (all or nothing), skipping the ones whose caller already stored their
        id; returns the events that were new, in order."""
        if not events:
            return []
        if self._connections is None:
            return await self._insert_sqlite(events)
        return await self._insert_postgres(self._connections, events)

    @staticmethod
    async def _insert_postgres(
        connections: HeldDriverConnections, events: Sequence[EventRecord]
    ) -> list[EventRecord]:
        import asyncpg  # type: ignore[import-untyped]  # the PostgreSQL driver

        rows = [_row(event) for event in events]
        async with connections.use() as driver:
            try:
                await driver.copy_records_to_table("events", records=rows, columns=_COLUMNS)
            except asyncpg.UniqueViolationError:
                columns = [list(column) for column in zip(*rows, strict=True)]
                stored = await driver.fetch(_INSERT_SKIPPING_DUPLICATES, *columns)
                return _first_of_each(events, {(record[0], record[1]) for record in stored})
        return list(events)  # COPY stored them all, so no key was there before or repeated

    async def _insert_sqlite(self, events: Sequence[EventRecord]) -> list[EventRecord]:
        statement = (
            sqlite.insert(Event)
            .on_conflict_do_nothing(index_elements=[Event.caller, Event.event_id])
            .returning(Event.caller, Event.event_id)
        )
        async with self._database.connection() as connection:
            result = await connection.execute(statement, [event.as_row() for event in events])
            stored = {(caller, event_id) for caller, event_id in result}
        return _first_of_each(events, stored)
