"""Event validation (the proto's rules) and in-process real-time counts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from meshcore.db import Database
from meshcore.errors import InvalidArgument
from meshcore.testing import FakeClock
from zoptal.analytics.v1 import analytics_pb2 as pb
from zoptal_analytics.buffer import EventBuffer
from zoptal_analytics.domain import EventInput, PageInput, validate_event
from zoptal_analytics.realtime import InProcessRealTime
from zoptal_analytics.service import AnalyticsService
from zoptal_analytics.servicer import _EventInputs

from .conftest import CALLER, NOW_MS, record

MINUTE = 60_000


def test_a_valid_event_gets_a_server_id_and_the_receive_time() -> None:
    """No id and no timestamp: the server assigns both."""
    stored = validate_event(
        EventInput(name="signup", anonymous_id="dev-1"), now_ms=NOW_MS, caller=CALLER
    )
    assert stored.event_id
    assert stored.occurred_at_ms == stored.received_at_ms == NOW_MS
    assert stored.actor == "a:dev-1"


def test_a_page_view_keeps_its_page_fields() -> None:
    """Page views are events named page_view with url, title and referrer."""
    stored = validate_event(
        EventInput(
            name="page_view",
            user_id="u1",
            page=PageInput("https://z.io/p", "Pricing", "https://search.example/"),
        ),
        now_ms=NOW_MS,
        caller=CALLER,
    )
    assert (stored.page_url, stored.page_title, stored.referrer, stored.actor) == (
        "https://z.io/p",
        "Pricing",
        "https://search.example/",
        "u:u1",
    )


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (EventInput(name="x"), "user_id"),
        (EventInput(name="bad name", user_id="u"), "name"),
        (EventInput(name="", user_id="u"), "name"),
        (EventInput(name="page_view", user_id="u"), "name"),
        (EventInput(name="x", user_id="u", page=PageInput("https://a.b")), "name"),
        (EventInput(name="x", user_id="u", event_id="has space"), "event_id"),
        (EventInput(name="x", user_id="u" * 65), "user_id"),
        (
            EventInput(name="x", user_id="u", properties={f"k{i}": "v" for i in range(51)}),
            "properties",
        ),
        (EventInput(name="x", user_id="u", properties={"k": "v" * 1025}), "properties"),
        (EventInput(name="x", user_id="u", timestamp_ms=NOW_MS + 6 * MINUTE), "timestamp"),
        (
            EventInput(name="x", user_id="u", timestamp_ms=NOW_MS - 31 * 24 * 60 * MINUTE),
            "timestamp",
        ),
        (EventInput(name="page_view", user_id="u", page=PageInput("/relative")), "page.url"),
        (EventInput(name="page_view", user_id="u", page=PageInput("ftp://a.b/x")), "page.url"),
        # urlsplit itself refuses an unclosed IPv6 bracket (was INTERNAL, found by edge fuzzing)
        (EventInput(name="page_view", user_id="u", page=PageInput("http://[::1")), "page.url"),
        (
            EventInput(
                name="page_view", user_id="u", page=PageInput("https://a.b", referrer="http://[")
            ),
            "page.referrer",
        ),
    ],
)
def test_invalid_events_name_the_field(event: EventInput, field: str) -> None:
    """Each rule of the proto is enforced with the field named; a batch names it within."""
    with pytest.raises(InvalidArgument) as caught:
        validate_event(event, now_ms=NOW_MS, caller=CALLER)
    assert caught.value.field.startswith(field)
    assert caught.value.within("events[3]").field.startswith(f"events[3].{field}")


def _service(tmp_path: Path) -> AnalyticsService:
    """A service whose batches are only validated here (nothing is written)."""
    clock = FakeClock(wall_start=NOW_MS / 1000)

    async def never_written(events):  # type: ignore[no-untyped-def]
        raise AssertionError("not expected to write")

    buffer = EventBuffer(
        never_written, max_batch_events=10, flush_interval=1.0, max_pending_events=10
    )
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    return AnalyticsService(database, buffer, InProcessRealTime(clock), clock=clock)


class _CountingEvents(list[EventInput]):
    """Events that count how many were read so far."""

    read = 0

    def __iter__(self) -> Iterator[EventInput]:
        for event in super().__iter__():
            self.read += 1
            yield event


async def test_a_big_batch_lets_other_tasks_run_while_it_is_validated(tmp_path: Path) -> None:
    """Validation pauses between slices, so a 1000-event batch does not hold the loop."""
    events = _CountingEvents(EventInput(name="e", user_id=f"u{i}") for i in range(1000))
    seen_while_validating: list[int] = []
    other = asyncio.create_task(asyncio.sleep(0))
    other.add_done_callback(lambda _: seen_while_validating.append(events.read))

    records = await _service(tmp_path).prepare_batch(events, caller=CALLER)

    assert len(records) == 1000
    assert 0 < seen_while_validating[0] < 1000


async def test_a_bad_event_in_a_batch_is_named_by_its_index(tmp_path: Path) -> None:
    """All or nothing: the first bad event fails the batch, named events[i].field."""
    events = [EventInput(name="e", user_id="u")] * 150 + [EventInput(name="bad name", user_id="u")]
    with pytest.raises(InvalidArgument) as caught:
        await _service(tmp_path).prepare_batch(events, caller=CALLER)
    assert caught.value.field == "events[150].name"


async def test_in_process_real_time_counts_events_and_distinct_actors_per_minute() -> None:
    """Per-minute counts, oldest first; active users are distinct over the whole window."""
    clock = FakeClock(wall_start=NOW_MS / 1000)
    counters = InProcessRealTime(clock)
    minute = NOW_MS - NOW_MS % MINUTE
    await counters.record(
        [
            record("signup", user="u1", at_ms=minute - 2 * MINUTE),
            record("signup", user="u2", at_ms=minute - MINUTE),
            record("login", user="u1", at_ms=minute),
            record("login", user="u1", at_ms=minute + 1),
        ]
    )
    snapshot = await counters.snapshot(3)
    assert snapshot.minute_starts_ms == [minute - 2 * MINUTE, minute - MINUTE, minute]
    assert snapshot.events_per_minute == [1, 1, 2]
    assert (snapshot.total_events, snapshot.active_users) == (4, 2)
    assert [(t.name, t.count, t.unique_users) for t in snapshot.top_events] == [
        ("login", 2, 1),
        ("signup", 2, 2),
    ]
    assert (await counters.snapshot(1)).active_users == 1


async def test_in_process_real_time_forgets_minutes_past_the_hour() -> None:
    """Memory stays bounded: minutes older than the retention are dropped as time moves."""
    clock = FakeClock(wall_start=NOW_MS / 1000)
    counters = InProcessRealTime(clock)
    await counters.record([record(at_ms=NOW_MS)])
    clock.advance(62 * 60)
    await counters.record([record(at_ms=NOW_MS + 62 * MINUTE)])
    assert len(counters._names) == 1
    assert {minute for minute, _ in counters._actors} == set(counters._names)
    assert (await counters.snapshot(60)).total_events == 1


def test_request_events_name_a_bad_field_by_its_position_however_read() -> None:
    """Converted lazily, a request's events still name ``events[i]`` by position in the
    request, whether iterated, indexed from the end or sliced."""
    request = pb.TrackEventsRequest(
        events=[
            pb.Event(name="ok", user_id="u"),
            pb.Event(name="late", user_id="u", timestamp=Timestamp(nanos=-1)),
        ]
    )
    events = _EventInputs(request.events, "events")
    assert (len(events), events[0].name, events[-2].name) == (2, "ok", "ok")
    for read in (list, lambda seq: seq[-1], lambda seq: seq[0:2]):
        with pytest.raises(InvalidArgument) as caught:
            read(events)
        assert caught.value.field == "events[1].timestamp"
