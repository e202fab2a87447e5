"""Real-time counters: events and active users per minute over the last hour.

``RedisRealTime`` (``realtime_redis``, imported only when Redis is configured) keeps, per UTC
minute, a hash of event name -> count and a HyperLogLog of
actors; every replica writes to the same keys, so any replica answers for all of them, and
PFCOUNT over several minutes gives the distinct actors of the whole window (a union, not a sum).
``InProcessRealTime`` does the same in memory for the embedded mode (one replica).

Counts are fed after each batch commits, with only the events that were new, so a retried
event is never counted twice. Real-time numbers are a best-effort view: while Redis is down
they are not recorded (ingest itself is unaffected) and queries answer UNAVAILABLE.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from meshcore.clock import SYSTEM_CLOCK, Clock

from zoptal_analytics.domain import EventRecord
from zoptal_analytics.repository import NameCount

__all__ = [
    "MINUTE_MS",
    "RETENTION_MINUTES",
    "InProcessRealTime",
    "RealTimeCounters",
    "RealTimeSnapshot",
    "actor_groups",
    "minute_window",
    "top_names",
]

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
RETENTION_MINUTES = 61
"""The longest window is 60 minutes including the current one; one more covers clock skew."""
TOP_EVENTS = 10


@dataclass(frozen=True)
class RealTimeSnapshot:
    window_minutes: int
    minute_starts_ms: list[int]
    events_per_minute: list[int]
    active_users: int
    top_events: list[NameCount]
    generated_at_ms: int

    @property
    def total_events(self) -> int:
        return sum(self.events_per_minute)


class RealTimeCounters(Protocol):
    async def record(self, events: Sequence[EventRecord]) -> None: ...

    async def snapshot(self, window_minutes: int) -> RealTimeSnapshot: ...

    async def close(self) -> None: ...


def minute_window(now_ms: int, window_minutes: int) -> list[int]:
    current = now_ms - now_ms % MINUTE_MS
    return [current - MINUTE_MS * back for back in range(window_minutes - 1, -1, -1)]


def _recent(events: Sequence[EventRecord], now_ms: int) -> list[tuple[int, EventRecord]]:
    """Events inside the retained window, with their minute (backfilled history is not live)."""
    oldest = now_ms - now_ms % MINUTE_MS - MINUTE_MS * (RETENTION_MINUTES - 1)
    return [
        (event.occurred_at_ms - event.occurred_at_ms % MINUTE_MS, event)
        for event in events
        if event.occurred_at_ms >= oldest
    ]


def top_names(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_EVENTS]


def actor_groups(
    events: Sequence[EventRecord], now_ms: int
) -> tuple[Counter[tuple[int, str]], dict[tuple[int, str], set[str]]]:
    """Counts per (minute, name) and actors per (minute, name); name "" is every event."""
    counts: Counter[tuple[int, str]] = Counter()
    actors: defaultdict[tuple[int, str], set[str]] = defaultdict(set)
    for minute, event in _recent(events, now_ms):
        name, actor = event.name, event.actor
        counts[minute, name] += 1
        actors[minute, ""].add(actor)
        actors[minute, name].add(actor)
    return counts, actors


class InProcessRealTime:
    """One process's view (the embedded mode runs one Analytics replica)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._names: dict[int, Counter[str]] = {}
        self._actors: dict[tuple[int, str], set[str]] = {}

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    async def record(self, events: Sequence[EventRecord]) -> None:
        now = self._now_ms()
        counts, actors = actor_groups(events, now)
        for (minute, name), count in counts.items():
            self._names.setdefault(minute, Counter())[name] += count
        for key, members in actors.items():
            self._actors.setdefault(key, set()).update(members)
        oldest = now - now % MINUTE_MS - MINUTE_MS * (RETENTION_MINUTES - 1)
        for minute in [m for m in self._names if m < oldest]:
            del self._names[minute]
        for key in [k for k in self._actors if k[0] < oldest]:
            del self._actors[key]

    async def snapshot(self, window_minutes: int) -> RealTimeSnapshot:
        now = self._now_ms()
        minutes = minute_window(now, window_minutes)
        totals: Counter[str] = Counter()
        per_minute = []
        for minute in minutes:
            names = self._names.get(minute, Counter())
            totals.update(names)
            per_minute.append(sum(names.values()))

        def distinct(name: str) -> int:
            return len(set().union(*(self._actors.get((m, name), set()) for m in minutes)))

        top = [NameCount(name, count, distinct(name)) for name, count in top_names(totals)]
        return RealTimeSnapshot(window_minutes, minutes, per_minute, distinct(""), top, now)

    async def close(self) -> None:
        return None
