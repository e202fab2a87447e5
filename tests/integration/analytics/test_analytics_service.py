"""Analytics over real gRPC against the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from meshcore.db import Database
from meshcore.migrations import upgrade_database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from zoptal.analytics.v1 import analytics_pb2 as pb, analytics_pb2_grpc
from zoptal_analytics.app import MIGRATIONS_DIR
from zoptal_analytics.domain import EventInput, EventRecord, validate_event
from zoptal_analytics.writer import EventWriter

from tests.support import free_port

from .conftest import CALLER, direct_count, make_settings, running_analytics

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

HOUR_MS = 3_600_000


def _stamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def _range_request(**extra: object) -> pb.GetAnalyticsRequest:
    now = int(time.time() * 1000)
    return pb.GetAnalyticsRequest(
        start_time=_stamp(now - 2 * HOUR_MS),
        end_time=_stamp(now + HOUR_MS),
        bucket=pb.BUCKET_SIZE_HOUR,
        **extra,  # type: ignore[arg-type]
    )


async def _realtime_once_settled(
    stub: analytics_pb2_grpc.AnalyticsServiceAsyncStub, *, expected_total: int
) -> pb.GetRealTimeAnalyticsResponse:
    """Real-time counts are recorded just after each batch commits (ingest never waits for
    Redis), so they may trail the acknowledgement by a moment: read until they arrive."""
    deadline = time.monotonic() + 10
    while True:
        answer = await stub.GetRealTimeAnalytics(
            pb.GetRealTimeAnalyticsRequest(window_minutes=5), metadata=CALLER
        )
        if answer.total_events >= expected_total or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


@pytest.mark.redis
async def test_every_acknowledged_event_survives_a_shutdown_and_restart(
    postgres_url: str, redis_url: str
) -> None:
    """N events through all three ingest paths, graceful stop, new server: all N counted."""
    settings = make_settings(postgres_url, redis_url)
    async with running_analytics(settings) as first:
        singles = [
            first.stub.TrackEvent(
                pb.TrackEventRequest(name="project.created", user_id=f"u{i % 7}"), metadata=CALLER
            )
            for i in range(200)
        ]
        views = [
            first.stub.TrackPageView(
                pb.TrackPageViewRequest(anonymous_id=f"a{i}", url="https://zoptal.io/pricing"),
                metadata=CALLER,
            )
            for i in range(50)
        ]
        batch = first.stub.TrackEvents(
            pb.TrackEventsRequest(
                events=[pb.Event(name="login", user_id=f"u{i}") for i in range(100)]
            ),
            metadata=CALLER,
        )
        await asyncio.gather(*singles, *views, batch)

        async def chunks() -> AsyncIterator[pb.IngestEventsRequest]:
            for chunk in range(5):
                yield pb.IngestEventsRequest(
                    events=[
                        pb.Event(name="build.finished", user_id="u1", event_id=f"b{chunk}-{i}")
                        for i in range(30)
                    ]
                )

        streamed = await first.stub.IngestEvents(chunks(), metadata=CALLER)
        assert (streamed.accepted_count, streamed.chunk_count) == (150, 5)
    # The server is gone; a new one on the same database sees everything it acknowledged.
    async with running_analytics(settings) as second:
        report = await second.stub.GetAnalytics(_range_request(), metadata=CALLER)
    assert report.total_events == 500
    assert await direct_count(postgres_url) == 500
    assert {e.name: e.count for e in report.top_events} == {
        "project.created": 200,
        "build.finished": 150,
        "login": 100,
        "page_view": 50,
    }
    assert report.top_pages[0].url == "https://zoptal.io/pricing"
    assert report.top_pages[0].views == 50


async def test_aggregates_match_direct_counts_in_postgres(postgres_url: str) -> None:
    """Per-bucket, per-name and unique-user numbers equal SQL run straight on the table."""
    now = int(time.time() * 1000)
    settings = make_settings(postgres_url, None)
    events = [
        pb.Event(
            name=("signup", "login", "invite.sent")[i % 3],
            user_id=f"user-{i % 11}",
            timestamp=_stamp(now - (i % 3) * HOUR_MS),
        )
        for i in range(300)
    ]
    async with running_analytics(settings) as running:
        await running.stub.TrackEvents(pb.TrackEventsRequest(events=events), metadata=CALLER)
        report = await running.stub.GetAnalytics(_range_request(), metadata=CALLER)
        only_login = await running.stub.GetAnalytics(
            _range_request(event_names=["login"], user_id="user-1"), metadata=CALLER
        )
    engine = create_async_engine(postgres_url)
    async with engine.connect() as connection:
        per_bucket = {
            int(start): (int(total), int(uniques))
            for start, total, uniques in await connection.execute(
                text(
                    "SELECT occurred_at_ms - occurred_at_ms % 3600000, count(*), "
                    "count(DISTINCT actor) FROM events GROUP BY 1"
                )
            )
        }
        login_user_1 = await connection.scalar(
            text("SELECT count(*) FROM events WHERE name = 'login' AND user_id = 'user-1'")
        )
    await engine.dispose()
    reported = {
        b.start_time.ToMilliseconds(): (b.total_events, b.unique_users)
        for b in report.buckets
        if b.total_events
    }
    assert reported == per_bucket
    assert report.total_events == 300
    assert report.unique_users == 11
    assert only_login.total_events == login_user_1


@pytest.mark.redis
async def test_two_replicas_share_real_time_counts(postgres_url: str, redis_url: str) -> None:
    """Events tracked on either replica show up in both replicas' real-time answer."""
    settings = make_settings(postgres_url, redis_url)
    async with running_analytics(settings) as one, running_analytics(settings) as two:
        await asyncio.gather(
            *(
                one.stub.TrackEvent(
                    pb.TrackEventRequest(name="a", user_id=f"u{i}"), metadata=CALLER
                )
                for i in range(30)
            ),
            *(
                two.stub.TrackEvent(
                    pb.TrackEventRequest(name="b", user_id=f"u{i}"), metadata=CALLER
                )
                for i in range(20, 60)
            ),
        )
        from_one = await _realtime_once_settled(one.stub, expected_total=70)
        from_two = await _realtime_once_settled(two.stub, expected_total=70)
    for answer in (from_one, from_two):
        assert answer.total_events == 70
        assert answer.active_users == 60  # HyperLogLog is exact at this size
        assert len(answer.events_per_minute) == 5
        assert sum(m.count for m in answer.events_per_minute) == 70
        assert {(e.name, e.count, e.unique_users) for e in answer.top_events} == {
            ("a", 30, 30),
            ("b", 40, 40),
        }


@pytest.mark.redis
async def test_a_retried_event_is_counted_once_everywhere(
    postgres_url: str, redis_url: str
) -> None:
    """The same event_id twice: one row, one real-time count."""
    settings = make_settings(postgres_url, redis_url)
    async with running_analytics(settings) as running:
        request = pb.TrackEventRequest(name="paid", user_id="u1", event_id="invoice-42")
        first = await running.stub.TrackEvent(request, metadata=CALLER)
        again = await running.stub.TrackEvent(request, metadata=CALLER)
        # A different event afterwards: once it shows, everything before it has been recorded.
        marker = pb.TrackEventRequest(name="marker", user_id="u1", event_id="marker-1")
        await running.stub.TrackEvent(marker, metadata=CALLER)
        live = await _realtime_once_settled(running.stub, expected_total=2)
    assert first.event_id == again.event_id == "invoice-42"
    assert await direct_count(postgres_url, "name = 'paid'") == 1
    assert {(e.name, e.count) for e in live.top_events} == {("paid", 1), ("marker", 1)}


async def test_redis_down_makes_real_time_unavailable_but_ingest_works(postgres_url: str) -> None:
    """Without Redis, tracking still succeeds and the real-time RPC says UNAVAILABLE."""
    settings = make_settings(postgres_url, f"redis://127.0.0.1:{free_port()}/0")
    async with running_analytics(settings) as running:
        tracked = await running.stub.TrackEvent(
            pb.TrackEventRequest(name="still.works", user_id="u1"), metadata=CALLER
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.stub.GetRealTimeAnalytics(
                pb.GetRealTimeAnalyticsRequest(), metadata=CALLER
            )
    assert tracked.event_id
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Redis" in (refused.value.details() or "")
    assert await direct_count(postgres_url) == 1


async def test_bad_input_is_invalid_argument_naming_the_event(postgres_url: str) -> None:
    """A batch with one bad event is refused whole, naming events[i].field."""
    settings = make_settings(postgres_url, None)
    async with running_analytics(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.stub.TrackEvents(
                pb.TrackEventsRequest(
                    events=[
                        pb.Event(name="ok", user_id="u"),
                        pb.Event(name="bad name", user_id="u"),
                    ]
                ),
                metadata=CALLER,
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events[1].name" in (refused.value.details() or "")
    assert await direct_count(postgres_url) == 0


async def test_postgres_batch_insert_reports_only_new_events(postgres_url: str) -> None:
    """COPY stores a batch of new ids; a batch with a stored id or a repeat falls back to the
    insert that skips them, and only the new events (each once) are reported."""
    await upgrade_database(postgres_url, MIGRATIONS_DIR)
    now = int(time.time() * 1000)

    def event(event_id: str) -> EventRecord:
        return validate_event(
            EventInput(name="n", user_id="u", event_id=event_id, properties={"k": "v"}),
            now_ms=now,
            caller="service:project",
        )

    def ids(events: Sequence[EventRecord]) -> list[str]:
        return [stored.event_id for stored in events]

    database = Database(postgres_url)
    writer = EventWriter(database)
    try:
        first = await writer.insert_new([event("a"), event("b")])
        second = await writer.insert_new([event("b"), event("c"), event("c")])
        third = await writer.insert_new([event("d"), event("d")])
        async with database.connection() as connection:
            properties = (
                await connection.execute(
                    text("SELECT properties::text FROM events WHERE event_id = 'a'")
                )
            ).scalar_one()
    finally:
        await writer.close()
        await database.dispose()
    assert (ids(first), ids(second), ids(third)) == (["a", "b"], ["c"], ["d"])
    assert json.loads(properties) == {"k": "v"}
    assert await direct_count(postgres_url) == 4


async def test_a_page_view_with_a_relative_url_names_the_url_field(postgres_url: str) -> None:
    """TrackPageView's bad url is INVALID_ARGUMENT on `url`, as the request spells it."""
    settings = make_settings(postgres_url, None)
    async with running_analytics(settings) as running:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.stub.TrackPageView(
                pb.TrackPageViewRequest(user_id="u", url="/pricing"), metadata=CALLER
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("url:")


async def test_buckets_list_their_most_frequent_names_and_sum_the_rest(postgres_url: str) -> None:
    """bucket_names_limit keeps each bucket's answer bounded; other_events holds the rest, so a
    bucket still adds up to its total."""
    now = int(time.time() * 1000)
    events = [
        pb.Event(name=f"n{index:02d}", user_id="u1", timestamp=_stamp(now))
        for index in range(12)
        for _ in range(index + 1)  # n11 the most frequent, n00 the least
    ]
    async with running_analytics(make_settings(postgres_url, None)) as running:
        await running.stub.TrackEvents(pb.TrackEventsRequest(events=events), metadata=CALLER)
        limited = await running.stub.GetAnalytics(
            _range_request(bucket_names_limit=3), metadata=CALLER
        )
        default = await running.stub.GetAnalytics(_range_request(), metadata=CALLER)
    (bucket,) = [b for b in limited.buckets if b.total_events]
    assert [c.name for c in bucket.counts] == ["n11", "n10", "n09"]
    listed = sum(c.count for c in bucket.counts)
    assert bucket.other_events == bucket.total_events - listed == sum(range(1, 10))
    (bucket,) = [b for b in default.buckets if b.total_events]
    assert len(bucket.counts) == 10
    assert bucket.other_events == 1 + 2


async def test_too_many_names_over_too_many_buckets_is_refused(postgres_url: str) -> None:
    minute_aligned = 1_699_999_980
    start = Timestamp(seconds=minute_aligned)
    end = Timestamp(seconds=minute_aligned + 2000 * 60)  # 2000 minute buckets
    request = pb.GetAnalyticsRequest(
        start_time=start, end_time=end, bucket=pb.BUCKET_SIZE_MINUTE, bucket_names_limit=50
    )
    async with running_analytics(make_settings(postgres_url, None)) as running:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await running.stub.GetAnalytics(request, metadata=CALLER)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith("bucket_names_limit:")
        # The default adapts instead: 16000 / 2000 = 8 names per bucket.
        request.bucket_names_limit = 0
        await running.stub.GetAnalytics(request, metadata=CALLER)
