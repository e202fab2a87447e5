"""Writes and aggregate queries on the events table; the database does the counting."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from zoptal_analytics.models import PAGE_VIEW, Event
from zoptal_analytics.records import EventRecord

__all__ = ["AnalyticsFilter", "EventRepository", "NameCount", "PageCount"]


@dataclass(frozen=True)
class AnalyticsFilter:
    start_ms: int
    end_ms: int
    names: tuple[str, ...] = ()
    user_id: str = ""


@dataclass(frozen=True)
class NameCount:
    name: str
    count: int
    unique_users: int


@dataclass(frozen=True)
class PageCount:
    url: str
    title: str
    views: int
    unique_users: int


@dataclass(frozen=True)
class BucketCounts:
    start_ms: int
    total: int
    unique_users: int
    names: list[NameCount]


# The events columns a batch carries, with the PostgreSQL array type each one travels as.
_UNNEST_TYPES = {
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
_COLUMNS = ", ".join(_UNNEST_TYPES)
_ARRAYS = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _UNNEST_TYPES.items())
# Built only from the constant map above, never from input.
_UNNEST_INSERT = text(
    f"INSERT INTO events ({_COLUMNS}) SELECT * FROM unnest({_ARRAYS}) "  # noqa: S608
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


class EventRepository:
    """Stateless; every method runs on the caller's connection (and its transaction)."""

    async def insert_new(
        self, connection: AsyncConnection, events: Sequence[EventRecord]
    ) -> set[str]:
        """Store ``events``; an ``event_id`` already stored is skipped. Returns the ids that
        were new, so real-time counters never count a retried event twice."""
        if not events:
            return set()
        if connection.dialect.name == "postgresql":
            return await self._insert_postgres(connection, events)
        statement = (
            sqlite.insert(Event)
            .on_conflict_do_nothing(index_elements=[Event.event_id])
            .returning(Event.event_id)
        )
        result = await connection.execute(statement, [event.as_row() for event in events])
        return set(result.scalars().all())

    async def _insert_postgres(
        self, connection: AsyncConnection, events: Sequence[EventRecord]
    ) -> set[str]:
        """One statement per batch: each column travels as one array and ``unnest`` turns
        them back into rows. About as fast as COPY (which cannot skip duplicates or say which
        rows were new), and four times faster than a multi-row VALUES insert."""
        columns: dict[str, list[object]] = {
            name: [getattr(event, name) for event in events]
            for name in _UNNEST_TYPES
            if name != "properties"
        }
        columns["properties"] = [
            json.dumps(dict(event.properties), separators=(",", ":")) if event.properties else "{}"
            for event in events
        ]
        result = await connection.execute(_UNNEST_INSERT, columns)
        return set(result.scalars().all())

    # -- aggregates -------------------------------------------------------------------------

    def _where(self, where: AnalyticsFilter) -> list[ColumnElement[bool]]:
        conditions = [Event.occurred_at_ms >= where.start_ms, Event.occurred_at_ms < where.end_ms]
        if where.names:
            conditions.append(Event.name.in_(where.names))
        if where.user_id:
            conditions.append(Event.user_id == where.user_id)
        return conditions

    async def totals(self, connection: AsyncConnection, where: AnalyticsFilter) -> tuple[int, int]:
        row = (
            await connection.execute(
                select(func.count(), func.count(Event.actor.distinct())).where(*self._where(where))
            )
        ).one()
        return int(row[0]), int(row[1])

    async def buckets(
        self, connection: AsyncConnection, where: AnalyticsFilter, bucket_ms: int
    ) -> dict[int, BucketCounts]:
        """Counts per bucket start and per name in it (non-empty buckets only)."""
        bucket = (Event.occurred_at_ms - Event.occurred_at_ms % bucket_ms).label("bucket")
        per_bucket = (
            select(bucket, func.count(), func.count(Event.actor.distinct()))
            .where(*self._where(where))
            .group_by(bucket)
        )
        result: dict[int, BucketCounts] = {
            int(start): BucketCounts(int(start), int(total), int(uniques), [])
            for start, total, uniques in await connection.execute(per_bucket)
        }
        per_name = (
            select(bucket, Event.name, func.count(), func.count(Event.actor.distinct()))
            .where(*self._where(where))
            .group_by(bucket, Event.name)
        )
        for start, name, count, uniques in await connection.execute(per_name):
            result[int(start)].names.append(NameCount(name, int(count), int(uniques)))
        for counts in result.values():
            counts.names.sort(key=lambda item: (-item.count, item.name))
        return result

    async def top_events(
        self, connection: AsyncConnection, where: AnalyticsFilter, limit: int
    ) -> list[NameCount]:
        count = func.count().label("n")
        query = (
            select(Event.name, count, func.count(Event.actor.distinct()))
            .where(*self._where(where))
            .group_by(Event.name)
            .order_by(count.desc(), Event.name)
            .limit(limit)
        )
        return [NameCount(n, int(c), int(u)) for n, c, u in await connection.execute(query)]

    async def top_pages(
        self, connection: AsyncConnection, where: AnalyticsFilter, limit: int
    ) -> list[PageCount]:
        views = func.count().label("views")
        page_views = [*self._where(where), Event.name == PAGE_VIEW]
        query = (
            select(Event.page_url, views, func.count(Event.actor.distinct()))
            .where(*page_views)
            .group_by(Event.page_url)
            .order_by(views.desc(), Event.page_url)
            .limit(limit)
        )
        top = [(url, int(v), int(u)) for url, v, u in await connection.execute(query)]
        if not top:
            return []
        titles = await self._latest_titles(connection, page_views, [url for url, _, _ in top])
        return [PageCount(url, titles.get(url, ""), v, u) for url, v, u in top]

    async def _latest_titles(
        self,
        connection: AsyncConnection,
        conditions: list[ColumnElement[bool]],
        urls: list[str],
    ) -> dict[str, str]:
        """The most recent title of each URL (window functions: SQLite 3.25+, PostgreSQL)."""
        rank = (
            func.row_number()
            .over(partition_by=Event.page_url, order_by=Event.occurred_at_ms.desc())
            .label("rank")
        )
        ranked = (
            select(Event.page_url, Event.page_title, rank)
            .where(and_(*conditions), Event.page_url.in_(urls))
            .subquery()
        )
        rows = await connection.execute(
            select(ranked.c.page_url, ranked.c.page_title).where(ranked.c.rank == 1)
        )
        return {url: title for url, title in rows}
