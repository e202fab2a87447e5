"""Real-time counters: events and active users per minute over the last hour.

``RedisRealTime`` keeps, per UTC minute, a hash of event name -> count and a HyperLogLog of
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
from meshcore.errors import Unavailable
from redis.asyncio import Redis
from redis.exceptions import RedisError

from zoptal_analytics.records import EventRecord
from zoptal_analytics.repository import NameCount

__all__ = [
    "MINUTE_MS",
    "RETENTION_MINUTES",
    "InProcessRealTime",
    "RealTimeCounters",
    "RealTimeSnapshot",
    "RedisRealTime",
]

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
RETENTION_MINUTES = 61
"""The longest window is 60 minutes including the current one; one more covers clock skew."""
TOP_EVENTS = 10
RECORD_BACKOFF_SECONDS = 5.0


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


def _window(now_ms: int, window_minutes: int) -> list[int]:
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


def _top(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_EVENTS]


def _actor_groups(
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
        counts, actors = _actor_groups(events, now)
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
        minutes = _window(now, window_minutes)
        totals: Counter[str] = Counter()
        per_minute = []
        for minute in minutes:
            names = self._names.get(minute, Counter())
            totals.update(names)
            per_minute.append(sum(names.values()))

        def distinct(name: str) -> int:
            return len(set().union(*(self._actors.get((m, name), set()) for m in minutes)))

        top = [NameCount(name, count, distinct(name)) for name, count in _top(totals)]
        return RealTimeSnapshot(window_minutes, minutes, per_minute, distinct(""), top, now)

    async def close(self) -> None:
        return None


class RedisRealTime:
    """Shared by every replica through Redis: ``<prefix>:<minute>:n`` (hash) and ``:u`` (HLL)."""

    def __init__(self, redis: Redis[bytes], *, prefix: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._skip_until = 0.0

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str, timeout: float, clock: Clock = SYSTEM_CLOCK
    ) -> RedisRealTime:
        """Builds a client; connects on first use, never here."""
        client: Redis[bytes] = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return cls(client, prefix=prefix, clock=clock)

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def _count_key(self, minute: int) -> str:
        return f"{self._prefix}:{minute}:n"

    def _actor_key(self, minute: int, name: str) -> str:
        """Distinct actors of a minute: all events (name "") or one event name."""
        return f"{self._prefix}:{minute}:u:{name}"

    async def record(self, events: Sequence[EventRecord]) -> None:
        counts, actors = _actor_groups(events, self._now_ms())
        if not counts or self._clock.monotonic() < self._skip_until:
            return
        ttl = RETENTION_MINUTES * 60 + 120
        pipe = self._redis.pipeline(transaction=False)
        for (minute, name), count in counts.items():
            pipe.hincrby(self._count_key(minute), name, count)
        for minute in {minute for minute, _ in counts}:
            pipe.expire(self._count_key(minute), ttl)
        for (minute, name), members in actors.items():
            pipe.pfadd(self._actor_key(minute, name), *members)
            pipe.expire(self._actor_key(minute, name), ttl)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            # Ingest already committed these events; only the live view misses them. Back off
            # so a Redis outage costs one timeout per few seconds, not one per batch.
            self._skip_until = self._clock.monotonic() + RECORD_BACKOFF_SECONDS
            logger.warning("real-time counts not recorded (Redis: %s)", type(exc).__name__)

    async def snapshot(self, window_minutes: int) -> RealTimeSnapshot:
        now = self._now_ms()
        minutes = _window(now, window_minutes)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for minute in minutes:
                pipe.hgetall(self._count_key(minute))
            pipe.pfcount(*(self._actor_key(minute, "") for minute in minutes))
            *hashes, active = await pipe.execute()
            totals: Counter[str] = Counter()
            per_minute = []
            for counts in hashes:
                decoded = {name.decode(): int(value) for name, value in counts.items()}
                totals.update(decoded)
                per_minute.append(sum(decoded.values()))
            top = _top(totals)
            # PFCOUNT over several keys is the size of their union: distinct over the window.
            pipe = self._redis.pipeline(transaction=False)
            for name, _ in top:
                pipe.pfcount(*(self._actor_key(minute, name) for minute in minutes))
            uniques = await pipe.execute() if top else []
        except (RedisError, OSError) as exc:
            raise Unavailable.of_dependency(
                "redis", "real-time analytics unavailable: Redis is unreachable", retry_after=5.0
            ) from exc
        top_counts = [
            NameCount(name, count, int(unique))
            for (name, count), unique in zip(top, uniques, strict=True)
        ]
        return RealTimeSnapshot(window_minutes, minutes, per_minute, int(active), top_counts, now)

    async def close(self) -> None:
        # aclose is redis-py 5's name; the installed types-redis stubs predate it.
        await self._redis.aclose()  # type: ignore[attr-defined]
