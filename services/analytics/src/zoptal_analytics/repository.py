"""Aggregate queries on the events table: the database does the counting."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from zoptal_analytics.models import PAGE_VIEW, Event

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
    other_events: int = 0
    """Events of names left out of ``names`` (``AnalyticsService.report``'s per-bucket limit)."""


class EventRepository:
    """Stateless queries; every method runs on the caller's connection (and its transaction).
    Writes are ``zoptal_analytics.writer``'s."""

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
