"""zoptal_analytics.realtime: the in-process counters of the embedded mode."""

from __future__ import annotations

from meshcore.testing import FakeClock
from zoptal_analytics.realtime import MINUTE_MS, InProcessRealTime

from .conftest import NOW_MS, record


async def test_in_process_real_time_counts_events_and_distinct_actors_per_minute() -> None:
    """Per-minute counts, oldest first; active users are distinct over the whole window."""
    clock = FakeClock(wall_start=NOW_MS / 1000)
    counters = InProcessRealTime(clock)
    minute = NOW_MS - NOW_MS % MINUTE_MS
    await counters.record(
        [
            record("signup", user="u1", at_ms=minute - 2 * MINUTE_MS),
            record("signup", user="u2", at_ms=minute - MINUTE_MS),
            record("login", user="u1", at_ms=minute),
            record("login", user="u1", at_ms=minute + 1),
        ]
    )
    snapshot = await counters.snapshot(3)
    assert snapshot.minute_starts_ms == [minute - 2 * MINUTE_MS, minute - MINUTE_MS, minute]
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
    await counters.record([record(at_ms=NOW_MS + 62 * MINUTE_MS)])
    assert len(counters._names) == 1
    assert {minute for minute, _ in counters._actors} == set(counters._names)
    assert (await counters.snapshot(60)).total_events == 1
