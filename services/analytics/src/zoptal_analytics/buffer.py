"""The ingest buffer: events from many calls are written together, and each call is answered
only once the batch holding its events is committed.

Acknowledged means durable: ``submit`` returns after the commit and raises if the write failed,
so no RPC ever answers OK for events that exist only in memory (see docs/adr). A batch is
written when ``max_batch_events`` wait (size), or else when ``flush_interval`` has passed since
the previous batch began (time): batches start at most one interval apart, so under load each
one gathers every call of its interval, while an event arriving after a quiet interval is
written at once, and none waits longer than the interval. Memory is bounded
by ``max_pending_events`` (queued plus being written): beyond it ``submit`` refuses at once
with RESOURCE_EXHAUSTED instead of queueing without limit. ``close`` writes everything queued.

The events of one ``submit`` always go into one batch, so a TrackEvents call is stored all or
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import ResourceExhausted, Unavailable
from meshcore.tasks import cancel_and_wait
from prometheus_client import Counter, Gauge

from zoptal_analytics.domain import EventRecord

__all__ = ["EventBuffer", "Writer"]

logger = logging.getLogger(__name__)

# Process-wide (replicas in one test process share them); created at import, which opens nothing.
PENDING_EVENTS = Gauge(
    "zoptal_analytics_ingest_pending_events", "Events accepted but not yet committed"
)
# Read when scraped, not updated per call: a gauge update takes a lock, on every TrackEvent.
_LIVE_BUFFERS: weakref.WeakSet[EventBuffer] = weakref.WeakSet()
PENDING_EVENTS.set_function(lambda: sum(buffer.pending_events for buffer in list(_LIVE_BUFFERS)))
COMMITTED_EVENTS = Counter(
    "zoptal_analytics_ingest_committed_events_total", "Events in committed batches"
)
COMMITTED_BATCHES = Counter("zoptal_analytics_ingest_batches_total", "Committed batches")
FAILED_BATCHES = Counter(
    "zoptal_analytics_ingest_failed_batches_total", "Batches whose write failed (calls failed)"
)
REJECTED_EVENTS = Counter(
    "zoptal_analytics_ingest_rejected_events_total", "Events refused because the buffer was full"
)

Writer = Callable[[Sequence[EventRecord]], Awaitable[Sequence[EventRecord]]]
"""Stores a batch in one transaction; returns the events that were new (not duplicates)."""
Committed = Callable[[Sequence[EventRecord]], Awaitable[None]]


@dataclass
class _Group:
    events: Sequence[EventRecord]
    done: asyncio.Future[None]
    queued_at: float


@dataclass
class _Stats:
    batches: int = 0
    events: int = 0
    largest_batch: int = 0
    rejected: int = 0


class EventBuffer:
    def __init__(
        self,
        write: Writer,
        *,
        max_batch_events: int,
        flush_interval: float,
        max_pending_events: int,
        max_concurrent_flushes: int = 1,
        on_committed: Committed | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._write = write
        self._max_batch = max_batch_events
        self._interval = flush_interval
        self._max_pending = max_pending_events
        self._slots = asyncio.Semaphore(max_concurrent_flushes)
        self._on_committed = on_committed
        self._clock = clock
        self._queue: deque[_Group] = deque()
        self._queued_events = 0
        self._pending_events = 0  # queued + being written
        self._wake = asyncio.Event()  # set when events arrive (the flusher may be idle)
        self._full = asyncio.Event()  # set when a batch is full or closing: flush now
        self._closing = False
        self._last_batch_at = -math.inf  # clock.monotonic() when the last batch was taken
        self._flusher: asyncio.Task[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self.stats = _Stats()
        _LIVE_BUFFERS.add(self)

    @property
    def pending_events(self) -> int:
        return self._pending_events

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._run(), name="analytics-flusher")

    def enqueue(self, events: Sequence[EventRecord]) -> asyncio.Future[None]:
        """Queue ``events`` as one unit; the future resolves when they are committed.

        Raises ``ResourceExhausted`` (nothing queued) when the buffer is full and
        ``Unavailable`` once shutdown has begun.
        """
        if self._closing or self._flusher is None:
            raise Unavailable("analytics is shutting down", retry_after=1.0)
        if self._pending_events + len(events) > self._max_pending:
            self.stats.rejected += len(events)
            REJECTED_EVENTS.inc(len(events))
            raise ResourceExhausted(
                "analytics ingest buffer is full", retry_after=max(self._interval, 0.1)
            )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Group(events, done, self._clock.monotonic()))
        self._queued_events += len(events)
        self._pending_events += len(events)
        self._wake.set()
        if self._queued_events >= self._max_batch:
            self._full.set()
        return done

    async def submit(self, events: Sequence[EventRecord]) -> None:
        """Queue ``events`` and return once they are committed (raise if they were not).

        A caller that gives up (deadline, cancel) cancels only its own future: its events stay
        in the batch other calls share, are written, and a resend is skipped as a duplicate.
        Hot paths await ``enqueue``'s future themselves, one coroutine level shorter.
        """
        await self.enqueue(events)

    async def close(self) -> None:
        """Refuse new events, write every queued one, wait for all writes to finish."""
        self._closing = True
        self._wake.set()
        self._full.set()
        if self._flusher is not None:
            await self._flusher
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    # -- the flusher ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._queued_events < self._max_batch and not self._closing:
                remaining = self._partial_batch_due() - self._clock.monotonic()
                if remaining > 0:
                    await self._wait_for_more(remaining)
                    continue
            # A write slot first, the batch second: events that arrive while every slot is
            # busy join the batch instead of waiting for the next one (group commit), so
            # batches grow with the load and commits per second stop being the limit.
            await self._slots.acquire()
            batch = self._take_batch()
            self._last_batch_at = self._clock.monotonic()
            task = asyncio.create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    def _partial_batch_due(self) -> float:
        """When the queued events should go out without a full batch: one interval after the
        previous batch began (the linger that makes busy batches big), at once when that is
        already past (an idle server adds no delay), never later than one interval after the
        oldest arrived."""
        oldest = self._queue[0].queued_at
        return min(oldest + self._interval, max(oldest, self._last_batch_at + self._interval))

    async def _wait_for_more(self, seconds: float) -> None:
        """Until the batch is full (or closing) or ``seconds`` pass, whichever is first.

        Only a full batch wakes the flusher early, not every arrival: under load that is one
        wake-up per batch instead of one per call.
        """
        self._full.clear()
        if self._queued_events >= self._max_batch or self._closing:
            return
        full = asyncio.ensure_future(self._full.wait())
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait((full, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(full, timer)

    def _take_batch(self) -> list[_Group]:
        batch = [self._queue.popleft()]
        size = len(batch[0].events)
        while self._queue and size + len(self._queue[0].events) <= self._max_batch:
            group = self._queue.popleft()
            batch.append(group)
            size += len(group.events)
        self._queued_events -= size
        return batch

    async def _flush(self, batch: list[_Group]) -> None:
        events = [event for group in batch for event in group.events]
        try:
            new_events = await self._write(events)
        except Exception as exc:
            logger.warning("analytics batch of %d events not stored: %s", len(events), exc)
            FAILED_BATCHES.inc()
            for group in batch:
                if not group.done.done():
                    group.done.set_exception(exc)
                    # Callers that went away must not leave "exception never retrieved" noise.
                    group.done.exception()
            return
        else:
            for group in batch:
                if not group.done.done():
                    group.done.set_result(None)
            self.stats.batches += 1
            self.stats.events += len(events)
            self.stats.largest_batch = max(self.stats.largest_batch, len(events))
            COMMITTED_BATCHES.inc()
            COMMITTED_EVENTS.inc(len(events))
        finally:
            self._pending_events -= len(events)
            self._slots.release()
        if self._on_committed is not None and new_events:
            try:
                await self._on_committed(new_events)
            except Exception:
                logger.exception("post-commit hook failed (real-time counts may lag)")
