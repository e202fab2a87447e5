"""GetAnalytics on SQLite: the database counts per bucket, unique actors, top events/pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.errors import InvalidArgument
from meshcore.testing import FakeClock
from sqlalchemy import text
from zoptal_analytics.buffer import EventBuffer
from zoptal_analytics.models import Base
from zoptal_analytics.realtime import InProcessRealTime
from zoptal_analytics.service import AnalyticsService, Bucket

from .conftest import NOW_MS, record

HOUR = 3_600_000
DAY_START = NOW_MS - NOW_MS % 86_400_000


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[AnalyticsService]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'analytics.db'}")
    await database.create_all(Base.metadata)
    clock = FakeClock(wall_start=NOW_MS / 1000)
    realtime = InProcessRealTime(clock)
    holder: list[AnalyticsService] = []

    async def write(events):  # type: ignore[no-untyped-def]
        return await holder[0].write_batch(events)

    buffer = EventBuffer(write, max_batch_events=100, flush_interval=0.0, max_pending_events=1000)
    analytics = AnalyticsService(database, buffer, realtime, clock=clock)
    holder.append(analytics)
    yield analytics
    await database.dispose()


async def _seed(service: AnalyticsService) -> None:
    await service.write_batch(
        [
            record("signup", user="u1", at_ms=DAY_START + 10),
            record("signup", user="u2", at_ms=DAY_START + 20),
            record("project.created", user="u1", at_ms=DAY_START + 30),
            record("project.created", user="u1", at_ms=DAY_START + HOUR + 5),
            record(
                "page_view",
                user="u3",
                at_ms=DAY_START + HOUR + 6,
                url="https://z.io/a",
                title="Old A",
            ),
            record(
                "page_view",
                user="u3",
                at_ms=DAY_START + HOUR + 7,
                url="https://z.io/a",
                title="New A",
            ),
            record(
                "page_view", user="u1", at_ms=DAY_START + HOUR + 8, url="https://z.io/b", title="B"
            ),
            record("signup", user="u9", at_ms=DAY_START + 3 * HOUR),  # outside the range
        ]
    )


async def test_counts_per_hour_include_empty_buckets(service: AnalyticsService) -> None:
    """Every bucket of the range comes back in order, with per-name counts and uniques."""
    await _seed(service)
    report = await service.report(
        start_ms=DAY_START, end_ms=DAY_START + 3 * HOUR, bucket=Bucket.HOUR
    )
    assert [b.start_ms for b in report.buckets] == [DAY_START + h * HOUR for h in range(3)]
    first, second, third = report.buckets
    assert (first.total, first.unique_users) == (3, 2)
    assert [(n.name, n.count, n.unique_users) for n in first.names] == [
        ("signup", 2, 2),
        ("project.created", 1, 1),
    ]
    assert (second.total, second.unique_users) == (4, 2)
    assert (third.total, third.names) == (0, [])
    assert (report.total_events, report.unique_users) == (7, 3)


async def test_top_events_and_pages_rank_by_count_then_name(service: AnalyticsService) -> None:
    """Ties break by name/url; a page shows its most recent title."""
    await _seed(service)
    report = await service.report(
        start_ms=DAY_START, end_ms=DAY_START + 3 * HOUR, bucket=Bucket.HOUR, top_limit=2
    )
    assert [(e.name, e.count) for e in report.top_events] == [
        ("page_view", 3),
        ("project.created", 2),
    ]
    assert [(p.url, p.title, p.views, p.unique_users) for p in report.top_pages] == [
        ("https://z.io/a", "New A", 2, 1),
        ("https://z.io/b", "B", 1, 1),
    ]


async def test_filters_by_name_and_user(service: AnalyticsService) -> None:
    """Name and user filters narrow every aggregate."""
    await _seed(service)
    report = await service.report(
        start_ms=DAY_START,
        end_ms=DAY_START + 3 * HOUR,
        bucket=Bucket.DAY,
        names=["signup", "project.created"],
        user_id="u1",
    )
    assert (report.total_events, report.unique_users) == (3, 1)
    assert [(e.name, e.count) for e in report.top_events] == [
        ("project.created", 2),
        ("signup", 1),
    ]


async def test_aggregates_match_a_direct_count(service: AnalyticsService) -> None:
    """The report's total equals COUNT(*) over the same range in the table."""
    await _seed(service)
    report = await service.report(start_ms=DAY_START, end_ms=DAY_START + HOUR, bucket=Bucket.MINUTE)
    async with service._database.connection() as connection:
        direct = await connection.scalar(
            text("SELECT count(*) FROM events WHERE occurred_at_ms >= :s AND occurred_at_ms < :e"),
            {"s": DAY_START, "e": DAY_START + HOUR},
        )
    assert report.total_events == direct == 3
    assert sum(bucket.total for bucket in report.buckets) == direct
    assert len(report.buckets) == 60


async def test_the_same_event_id_is_stored_once(service: AnalyticsService) -> None:
    """Writing an event again returns nothing new and the count stays one."""
    first = await service.write_batch([record(event_id="dup", at_ms=DAY_START)])
    again = await service.write_batch([record(event_id="dup", at_ms=DAY_START)])
    report = await service.report(start_ms=DAY_START, end_ms=DAY_START + HOUR, bucket=Bucket.HOUR)
    assert ([e.event_id for e in first], list(again)) == (["dup"], [])
    assert report.total_events == 1


async def test_an_event_id_is_unique_per_caller(service: AnalyticsService) -> None:
    """The same id from two callers (in one batch, then again) is two events, each reported
    new once; each caller's resend returns nothing new."""
    first = await service.write_batch(
        [
            record(event_id="dup", at_ms=DAY_START, caller="user:ada"),
            record(event_id="dup", at_ms=DAY_START, caller="user:bob"),
            record(event_id="dup", at_ms=DAY_START, caller="user:bob"),
        ]
    )
    again = await service.write_batch(
        [
            record(event_id="dup", at_ms=DAY_START, caller="user:bob"),
            record(event_id="dup", at_ms=DAY_START, caller="service:project"),
        ]
    )
    report = await service.report(start_ms=DAY_START, end_ms=DAY_START + HOUR, bucket=Bucket.HOUR)
    assert [e.caller for e in first] == ["user:ada", "user:bob"]
    assert [e.caller for e in again] == ["service:project"]
    assert report.total_events == 3


async def test_the_start_is_rounded_down_to_the_bucket(service: AnalyticsService) -> None:
    """A range starting mid-hour begins at the hour, as the proto says."""
    report = await service.report(
        start_ms=DAY_START + HOUR + 1234, end_ms=DAY_START + 2 * HOUR, bucket=Bucket.HOUR
    )
    assert [b.start_ms for b in report.buckets] == [DAY_START + HOUR]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start_ms": 0}, "start_time"),
        ({"end_ms": DAY_START - 1}, "end_time"),
        ({"bucket": None}, "bucket"),
        ({"bucket": Bucket.MINUTE, "end_ms": DAY_START + 2001 * 60_000}, "end_time"),
        ({"names": ["x"] * 51}, "event_names"),
        ({"names": [""]}, "event_names[0]"),
        ({"top_limit": 101}, "top_limit"),
    ],
)
async def test_bad_queries_name_the_field(
    service: AnalyticsService, kwargs: dict[str, object], field: str
) -> None:
    """Invalid ranges, buckets and filters are INVALID_ARGUMENT naming the field."""
    arguments: dict[str, object] = {
        "start_ms": DAY_START,
        "end_ms": DAY_START + HOUR,
        "bucket": Bucket.HOUR,
        **kwargs,
    }
    with pytest.raises(InvalidArgument) as caught:
        await service.report(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
