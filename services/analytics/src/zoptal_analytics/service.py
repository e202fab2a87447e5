"""Analytics domain logic: validate and ingest events, aggregate them, read real-time counts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.errors import InvalidArgument
from meshcore.validation import Violations

from zoptal_analytics.buffer import EventBuffer
from zoptal_analytics.domain import EventInput, EventRecord, validate_event
from zoptal_analytics.realtime import RealTimeCounters, RealTimeSnapshot
from zoptal_analytics.repository import (
    AnalyticsFilter,
    BucketCounts,
    EventRepository,
    NameCount,
    PageCount,
)
from zoptal_analytics.writer import EventWriter

__all__ = ["MAX_BATCH_EVENTS", "AnalyticsReport", "AnalyticsService", "Bucket"]

MAX_BATCH_EVENTS = 1000
VALIDATION_SLICE = 100
MAX_BUCKETS = 2000
MAX_NAME_FILTERS = 50
DEFAULT_TOP = 10
MAX_BUCKET_NAMES = 50
DEFAULT_BUCKET_NAMES = 10
MAX_BUCKET_ENTRIES = 16_000
"""Names listed over all buckets of one answer: 16000 counts of at most ~160 bytes, plus the
buckets, top events and top pages, stay under the 4 MiB every gRPC stack reads by default."""
DEFAULT_WINDOW_MINUTES = 5
MAX_WINDOW_MINUTES = 60


class Bucket(IntEnum):
    MINUTE = 60_000
    HOUR = 3_600_000
    DAY = 86_400_000


@dataclass(frozen=True)
class AnalyticsReport:
    buckets: list[BucketCounts]
    total_events: int
    unique_users: int
    top_events: list[NameCount]
    top_pages: list[PageCount]


class AnalyticsService:
    def __init__(
        self,
        database: Database,
        buffer: EventBuffer,
        realtime: RealTimeCounters,
        *,
        clock: Clock = SYSTEM_CLOCK,
        repository: EventRepository | None = None,
    ) -> None:
        self._database = database
        self._buffer = buffer
        self._realtime = realtime
        self._clock = clock
        self._repository = repository or EventRepository()
        self._writer = EventWriter(database)

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    # -- ingest -----------------------------------------------------------------------------

    async def prepare_batch(
        self, events: Sequence[EventInput], *, caller: str
    ) -> list[EventRecord]:
        """Validate every event sent by ``caller`` (all or nothing), naming fields
        ``events[i].x``.

        A thousand events take several milliseconds of CPU: the event loop runs between slices
        of ``VALIDATION_SLICE``, so the batches being written (their database round trips) and
        other calls keep moving while a big request is checked. ``events`` may convert lazily
        as it is read; its conversion then shares those pauses."""
        if not 1 <= len(events) <= MAX_BATCH_EVENTS:
            raise InvalidArgument("events", f"1 to {MAX_BATCH_EVENTS} events per call")
        now = self._now_ms()
        records = []
        for index, event in enumerate(events):
            if index and not index % VALIDATION_SLICE:
                await asyncio.sleep(0)
            try:
                records.append(validate_event(event, now_ms=now, caller=caller))
            except InvalidArgument as error:
                raise error.within(f"events[{index}]") from None
        return records

    async def track(self, event: EventInput, *, caller: str) -> str:
        """Store one event of ``caller`` (``meshcore.idempotency.caller_scope``) durably
        (returns after its batch commits); its id."""
        record = validate_event(event, now_ms=self._now_ms(), caller=caller)
        await self._buffer.enqueue((record,))
        return record.event_id

    async def track_batch(self, events: Sequence[EventInput], *, caller: str) -> list[str]:
        """Store the events of ``caller`` durably, all or nothing; their ids in order."""
        records = await self.prepare_batch(events, caller=caller)
        await self._buffer.enqueue(records)
        return [record.event_id for record in records]

    def enqueue(self, records: Sequence[EventRecord]) -> asyncio.Future[None]:
        """Queue validated events; the future resolves once they are committed."""
        return self._buffer.enqueue(records)

    async def close(self) -> None:
        """Release the writer's connections (after the buffer is closed)."""
        await self._writer.close()

    async def write_batch(self, events: Sequence[EventRecord]) -> Sequence[EventRecord]:
        """The buffer's writer: stores a batch atomically; returns the events that were new."""
        return await self._writer.insert_new(events)

    # -- queries ----------------------------------------------------------------------------

    async def report(
        self,
        *,
        start_ms: int,
        end_ms: int,
        bucket: Bucket | None,
        names: Sequence[str] = (),
        user_id: str = "",
        top_limit: int = 0,
        bucket_names_limit: int = 0,
    ) -> AnalyticsReport:
        with Violations() as violations:
            if start_ms <= 0:
                violations.add("start_time", "required")
            if end_ms <= 0:
                violations.add("end_time", "required")
            elif start_ms > 0 and end_ms <= start_ms:
                violations.add("end_time", "must be after start_time")
            if bucket is None:
                violations.add("bucket", "required: minute, hour or day")
            if len(names) > MAX_NAME_FILTERS:
                violations.add("event_names", f"at most {MAX_NAME_FILTERS} names")
            for index, name in enumerate(names):
                if not name or len(name) > 128:
                    violations.add(f"event_names[{index}]", "1 to 128 characters")
            if len(user_id) > 64:
                violations.add("user_id", "at most 64 characters")
            if not 0 <= top_limit <= 100:
                violations.add("top_limit", "must be 0..100")
            if not 0 <= bucket_names_limit <= MAX_BUCKET_NAMES:
                violations.add("bucket_names_limit", f"must be 0..{MAX_BUCKET_NAMES}")
        assert bucket is not None  # refused above otherwise
        start_ms -= start_ms % bucket  # rounded down to the bucket, as documented
        bucket_count = (end_ms - start_ms + bucket - 1) // bucket
        if bucket_count > MAX_BUCKETS:
            raise InvalidArgument(
                "end_time", f"at most {MAX_BUCKETS} buckets from start_time to end_time"
            )
        per_bucket = bucket_names_limit or min(
            DEFAULT_BUCKET_NAMES, MAX_BUCKET_ENTRIES // bucket_count
        )
        if bucket_count * per_bucket > MAX_BUCKET_ENTRIES:
            raise InvalidArgument(
                "bucket_names_limit",
                f"{bucket_count} buckets of {per_bucket} names is over {MAX_BUCKET_ENTRIES}: "
                "ask for fewer names or fewer buckets",
            )
        where = AnalyticsFilter(start_ms, end_ms, tuple(dict.fromkeys(names)), user_id)
        top = top_limit or DEFAULT_TOP
        async with self._database.connection() as connection:
            total, uniques = await self._repository.totals(connection, where)
            found = await self._repository.buckets(connection, where, bucket)
            top_events = await self._repository.top_events(connection, where, top)
            top_pages = await self._repository.top_pages(connection, where, top)
        buckets = [
            _first_names(found.get(start, BucketCounts(start, 0, 0, [])), per_bucket)
            for start in range(start_ms, end_ms, bucket)
        ]
        return AnalyticsReport(buckets, total, uniques, top_events, top_pages)

    async def realtime(self, window_minutes: int = 0) -> RealTimeSnapshot:
        if not 0 <= window_minutes <= MAX_WINDOW_MINUTES:
            raise InvalidArgument("window_minutes", f"must be 0..{MAX_WINDOW_MINUTES}")
        return await self._realtime.snapshot(window_minutes or DEFAULT_WINDOW_MINUTES)


def _first_names(counts: BucketCounts, limit: int) -> BucketCounts:
    """``counts`` with its ``limit`` most frequent names (already sorted), the rest summed."""
    if len(counts.names) <= limit:
        return counts
    listed = counts.names[:limit]
    other = counts.total - sum(item.count for item in listed)
    return BucketCounts(counts.start_ms, counts.total, counts.unique_users, listed, other)
