"""The Redis-backed real-time counters (``RedisRealTime``), shared by every replica; see
``realtime`` for what is counted. A module of its own so that the embedded mode, which counts in
memory, never imports redis-py (nor the OpenTelemetry SDK it brings along).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import Unavailable
from redis.asyncio import Redis
from redis.exceptions import RedisError

from zoptal_analytics.domain import EventRecord
from zoptal_analytics.realtime import (
    RETENTION_MINUTES,
    RealTimeSnapshot,
    actor_groups,
    minute_window,
    top_names,
)
from zoptal_analytics.repository import NameCount

__all__ = ["RedisRealTime"]

logger = logging.getLogger(__name__)

RECORD_BACKOFF_SECONDS = 5.0


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
        counts, actors = actor_groups(events, self._now_ms())
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
        minutes = minute_window(now, window_minutes)
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
            top = top_names(totals)
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
