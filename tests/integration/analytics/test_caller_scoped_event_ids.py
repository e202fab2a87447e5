"""Event ids belong to their caller: over real gRPC against the real PostgreSQL (and Redis).

Another caller reusing an ``event_id`` gets an event of its own, counted in SQL and in the
real-time view; the same caller resending it is still deduplicated, concurrently too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from meshcore.db import Database
from meshcore.migrations import upgrade_database
from sqlalchemy import text
from zoptal.analytics.v1 import analytics_pb2 as pb
from zoptal_analytics.app import MIGRATIONS_DIR
from zoptal_analytics.domain import EventInput, EventRecord, validate_event
from zoptal_analytics.writer import EventWriter

from tests.migrating import upgrade_with_rows
from tests.tokens import MINT

from .conftest import CALLER, direct_count, make_settings, running_analytics

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

ADA = MINT.as_user("ada")
BOB = MINT.as_user("bob")
OTHER_SERVICE = MINT.as_service("billing", "analytics:write")


async def _stored(database_url: str, event_id: str) -> list[tuple[str, str, str]]:
    """(caller, user_id, name) of every stored event with ``event_id``, sorted."""
    database = Database(database_url)
    try:
        async with database.connection() as connection:
            rows = await connection.execute(
                text("SELECT caller, user_id, name FROM events WHERE event_id = :id"),
                {"id": event_id},
            )
            return sorted((str(c), str(u), str(n)) for c, u, n in rows)
    finally:
        await database.dispose()


async def test_two_users_and_a_service_reusing_an_event_id_each_keep_their_event(
    postgres_url: str,
) -> None:
    """Ada, Bob and the project service send event_id "e-1": three events; each resend
    (with other content too) is deduplicated within its own caller."""
    settings = make_settings(postgres_url, None)
    async with running_analytics(settings) as running:
        stub = running.stub
        answers = [
            await stub.TrackEvent(
                pb.TrackEventRequest(name="ada.did", event_id="e-1"), metadata=ADA
            ),
            await stub.TrackEvent(
                pb.TrackEventRequest(name="bob.did", event_id="e-1"), metadata=BOB
            ),
            await stub.TrackEvent(
                pb.TrackEventRequest(name="svc.did", user_id="carol", event_id="e-1"),
                metadata=CALLER,
            ),
            # Replays: the same callers again, Bob with other content (the first is kept).
            await stub.TrackEvent(
                pb.TrackEventRequest(name="ada.did", event_id="e-1"), metadata=ADA
            ),
            await stub.TrackEvent(
                pb.TrackEventRequest(name="bob.changed", event_id="e-1"), metadata=BOB
            ),
            await stub.TrackPageView(
                pb.TrackPageViewRequest(url="https://z.io/", event_id="e-1"), metadata=ADA
            ),
        ]
    assert {answer.event_id for answer in answers} == {"e-1"}
    assert await _stored(postgres_url, "e-1") == [
        ("service:project", "carol", "svc.did"),
        ("user:ada", "ada", "ada.did"),
        ("user:bob", "bob", "bob.did"),
    ]


async def test_batches_of_two_services_with_the_same_ids_are_both_stored(
    postgres_url: str,
) -> None:
    """TrackEvents and IngestEvents: another writer's ids never swallow this writer's events."""
    settings = make_settings(postgres_url, None)
    events = [pb.Event(name="batch", user_id=f"u{i}", event_id=f"b-{i}") for i in range(50)]

    async def chunks() -> AsyncIterator[pb.IngestEventsRequest]:
        yield pb.IngestEventsRequest(events=events)

    async with running_analytics(settings) as running:
        first = await running.stub.TrackEvents(
            pb.TrackEventsRequest(events=events), metadata=CALLER
        )
        other = await running.stub.IngestEvents(chunks(), metadata=OTHER_SERVICE)
        # Each writer resending its whole batch: nothing new.
        await running.stub.TrackEvents(pb.TrackEventsRequest(events=events), metadata=CALLER)
        await running.stub.IngestEvents(chunks(), metadata=OTHER_SERVICE)
    assert (first.accepted_count, other.accepted_count) == (50, 50)
    assert await direct_count(postgres_url) == 100
    assert await direct_count(postgres_url, "caller = 'service:billing'") == 50
    assert await direct_count(postgres_url, "caller = 'service:project'") == 50


@pytest.mark.redis
async def test_concurrent_resends_by_two_callers_store_and_count_one_event_each(
    postgres_url: str, redis_url: str
) -> None:
    """40 concurrent sends of one id by Ada and 40 by Bob, spread over two replicas: one row
    per caller in PostgreSQL, two events and two active users in the real-time view."""
    settings = make_settings(postgres_url, redis_url)
    async with running_analytics(settings) as one, running_analytics(settings) as two:
        sends = [
            replica.stub.TrackEvent(
                pb.TrackEventRequest(name="clicked", event_id="same-click"), metadata=who
            )
            for _ in range(20)
            for replica in (one, two)
            for who in (ADA, BOB)
        ]
        answers = await asyncio.gather(*sends)
        deadline = time.monotonic() + 10
        while True:
            live = await one.stub.GetRealTimeAnalytics(
                pb.GetRealTimeAnalyticsRequest(window_minutes=5), metadata=CALLER
            )
            if live.total_events >= 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    assert {answer.event_id for answer in answers} == {"same-click"}
    assert await _stored(postgres_url, "same-click") == [
        ("user:ada", "ada", "clicked"),
        ("user:bob", "bob", "clicked"),
    ]
    assert (live.total_events, live.active_users) == (2, 2)


async def test_the_postgres_writer_keys_new_events_by_caller_and_id(postgres_url: str) -> None:
    """COPY stores the same id under two callers; a batch that repeats a stored pair falls back
    to the insert that skips it, and reports a third caller's event with that id as new."""
    await upgrade_database(postgres_url, MIGRATIONS_DIR)
    now = int(time.time() * 1000)

    def event(caller: str) -> EventRecord:
        return validate_event(
            EventInput(name="n", user_id="u", event_id="shared"), now_ms=now, caller=caller
        )

    database = Database(postgres_url)
    writer = EventWriter(database)
    try:
        first = await writer.insert_new([event("user:a"), event("user:b")])
        second = await writer.insert_new([event("user:a"), event("user:c"), event("user:c")])
    finally:
        await writer.close()
        await database.dispose()
    assert [e.caller for e in first] == ["user:a", "user:b"]
    assert [e.caller for e in second] == ["user:c"]
    assert await direct_count(postgres_url, "event_id = 'shared'") == 3


async def test_migration_0002_keeps_existing_events_under_no_caller(
    sqlite_or_postgres_url: str,
) -> None:
    """Events stored before callers were recorded stay, with caller ""; a caller sending
    their id afterwards gets an event of its own."""
    url = sqlite_or_postgres_url
    old_event = (
        "INSERT INTO events (event_id, name, user_id, anonymous_id, actor, session_id,"
        " occurred_at_ms, received_at_ms, properties, page_url, page_title, referrer)"
        " VALUES ('old-1', 'n', 'u', '', 'u:u', '', 1, 1, '{}', '', '', '')"
    )
    await upgrade_with_rows(url, MIGRATIONS_DIR, "0001", [(old_event, {})])
    database = Database(url)
    writer = EventWriter(database)
    try:
        resent = EventInput(name="n", user_id="u", event_id="old-1")
        now = int(time.time() * 1000)
        new = await writer.insert_new([validate_event(resent, now_ms=now, caller="user:u")])
    finally:
        await writer.close()
        await database.dispose()
    assert [event.caller for event in new] == ["user:u"]
    assert [caller for caller, _, _ in await _stored(url, "old-1")] == ["", "user:u"]
