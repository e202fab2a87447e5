"""The ingest buffer: batches by size or time, acks after commit, bounded, flushed on close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from meshcore.errors import ResourceExhausted, Unavailable
from meshcore.testing import FakeClock
from zoptal_analytics.buffer import EventBuffer
from zoptal_analytics.domain import EventRecord

from tests.support import settle

from .conftest import record


class FakeStore:
    """Commits batches when told to (``gate``), or fails them (``fail``)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.stored: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None
        self.committed_hook: list[list[str]] = []

    async def write(self, events: Sequence[EventRecord]) -> Sequence[EventRecord]:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.batches.append([event.event_id for event in events])
        new = [event for event in events if event.event_id not in self.stored]
        self.stored.update(event.event_id for event in events)
        return new

    async def on_committed(self, events: Sequence[EventRecord]) -> None:
        self.committed_hook.append([event.event_id for event in events])


def make_buffer(
    store: FakeStore, clock: FakeClock, *, batch: int = 3, pending: int = 100
) -> EventBuffer:
    buffer = EventBuffer(
        store.write,
        max_batch_events=batch,
        flush_interval=1.0,
        max_pending_events=pending,
        on_committed=store.on_committed,
        clock=clock,
    )
    buffer.start()
    return buffer


async def test_a_full_batch_is_written_without_waiting_for_the_interval() -> None:
    """Size trigger: three single-event calls make one batch at once."""
    store, clock = FakeStore(), FakeClock()
    buffer = make_buffer(store, clock, batch=3)
    calls = [asyncio.create_task(buffer.submit([record(event_id=f"e{i}")])) for i in range(3)]
    await asyncio.gather(*calls)
    assert store.batches == [["e0", "e1", "e2"]]
    await buffer.close()


async def test_a_lone_event_after_a_quiet_interval_is_written_at_once() -> None:
    """An idle server adds no linger: the event's write starts without the clock moving."""
    store, clock = FakeStore(), FakeClock()
    buffer = make_buffer(store, clock, batch=3)
    await buffer.submit([record(event_id="only")])
    assert store.batches == [["only"]]
    await buffer.close()


async def test_a_partial_batch_waits_one_interval_after_the_previous_batch() -> None:
    """Time trigger: batches start at most one interval apart, so the calls of an interval
    share one write; the wait ends exactly when the interval since the last batch is over."""
    store, clock = FakeStore(), FakeClock()
    buffer = make_buffer(store, clock, batch=3)
    await buffer.submit([record(event_id="first")])
    clock.advance(0.4)
    calls = [asyncio.create_task(buffer.submit([record(event_id=f"e{i}")])) for i in range(2)]
    await settle()
    clock.advance(0.5)
    await settle()
    assert store.batches == [["first"]]
    assert not any(call.done() for call in calls)
    clock.advance(0.1)
    await asyncio.gather(*calls)
    assert store.batches == [["first"], ["e0", "e1"]]
    await buffer.close()


async def test_submit_returns_only_after_the_commit() -> None:
    """An acknowledged event is a stored event: the call waits for its batch's write."""
    store, clock = FakeStore(), FakeClock()
    store.gate = asyncio.Event()
    buffer = make_buffer(store, clock, batch=1)
    call = asyncio.create_task(buffer.submit([record(event_id="a")]))
    await settle()
    assert not call.done()
    store.gate.set()
    await call
    assert store.stored == {"a"}
    await buffer.close()


async def test_a_failed_write_fails_every_call_in_the_batch_and_frees_the_space() -> None:
    """Nothing is acknowledged when the commit fails; the buffer accepts again afterwards."""
    store, clock = FakeStore(), FakeClock()
    store.fail = Unavailable("database unavailable")
    buffer = make_buffer(store, clock, batch=2, pending=2)
    calls = [asyncio.create_task(buffer.submit([record()])) for _ in range(2)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, Unavailable) for result in results)
    assert buffer.pending_events == 0
    store.fail = None
    await asyncio.gather(*(buffer.submit([record()]) for _ in range(2)))
    assert len(store.batches) == 1
    await buffer.close()


async def test_a_full_buffer_refuses_with_resource_exhausted() -> None:
    """Back-pressure: beyond max_pending_events nothing is queued, and retry info is given."""
    store, clock = FakeStore(), FakeClock()
    store.gate = asyncio.Event()
    buffer = make_buffer(store, clock, batch=2, pending=4)
    accepted = [asyncio.create_task(buffer.submit([record(), record()])) for _ in range(2)]
    await settle()
    with pytest.raises(ResourceExhausted) as refused:
        buffer.enqueue([record()])
    assert refused.value.retry_after is not None
    store.gate.set()
    await asyncio.gather(*accepted)
    await buffer.submit([record(), record()])
    await buffer.close()


async def test_the_events_of_one_call_are_never_split_across_batches() -> None:
    """A TrackEvents call is stored all or nothing, even when larger than a batch."""
    store, clock = FakeStore(), FakeClock()
    buffer = make_buffer(store, clock, batch=3)
    first = asyncio.create_task(buffer.submit([record(event_id="a1"), record(event_id="a2")]))
    second = asyncio.create_task(buffer.submit([record(event_id="b1"), record(event_id="b2")]))
    big = asyncio.create_task(buffer.submit([record(event_id=f"c{i}") for i in range(5)]))
    await settle()
    clock.advance(1.0)
    await asyncio.gather(first, second, big)
    assert sorted(store.batches) == [["a1", "a2"], ["b1", "b2"], [f"c{i}" for i in range(5)]]
    await buffer.close()


async def test_close_writes_everything_queued_then_refuses_new_events() -> None:
    """Graceful shutdown: queued events are written at once, later ones get UNAVAILABLE."""
    store, clock = FakeStore(), FakeClock()
    buffer = make_buffer(store, clock, batch=100)
    calls = [asyncio.create_task(buffer.submit([record(event_id=f"e{i}")])) for i in range(5)]
    await settle()
    await buffer.close()
    await asyncio.gather(*calls)
    assert store.stored == {f"e{i}" for i in range(5)}
    with pytest.raises(Unavailable):
        await buffer.submit([record()])


async def test_a_caller_that_gives_up_does_not_lose_its_events() -> None:
    """A cancelled call's events are still written (retries dedupe by event id)."""
    store, clock = FakeStore(), FakeClock()
    buffer = make_buffer(store, clock, batch=10)
    call = asyncio.create_task(buffer.submit([record(event_id="impatient")]))
    await settle()
    call.cancel()
    clock.advance(1.0)
    await settle()
    assert store.stored == {"impatient"}
    await buffer.close()


async def test_only_new_events_reach_the_post_commit_hook() -> None:
    """A retried event is stored once and counted live once."""
    store, clock = FakeStore(), FakeClock()
    buffer = make_buffer(store, clock, batch=1)
    await buffer.submit([record(event_id="x")])
    await buffer.submit([record(event_id="x")])
    await settle()
    assert store.committed_hook == [["x"]]
    await buffer.close()


async def test_events_arriving_during_a_write_join_the_next_batch_together() -> None:
    """Group commit: while the only write slot is busy, every new call waits for one batch."""
    store, clock = FakeStore(), FakeClock()
    store.gate = asyncio.Event()
    buffer = make_buffer(store, clock, batch=100)
    first = asyncio.create_task(buffer.submit([record(event_id="first")]))
    await settle()
    clock.advance(1.0)
    await settle()
    later = [asyncio.create_task(buffer.submit([record(event_id=f"l{i}")])) for i in range(5)]
    await settle()
    clock.advance(1.0)
    await settle()
    later += [asyncio.create_task(buffer.submit([record(event_id=f"m{i}")])) for i in range(3)]
    await settle()
    store.gate.set()
    await settle()
    clock.advance(1.0)  # lets a leftover batch go out, so a wrong split fails, not hangs
    await asyncio.gather(first, *later)
    assert store.batches[0] == ["first"]
    assert sorted(store.batches[1]) == sorted([f"l{i}" for i in range(5)] + ["m0", "m1", "m2"])
    await buffer.close()


async def test_the_pending_gauge_counts_queued_and_unwritten_events_when_scraped() -> None:
    """zoptal_analytics_ingest_pending_events is read from the live buffers at scrape time."""
    from prometheus_client import REGISTRY

    def scraped() -> float:
        return REGISTRY.get_sample_value("zoptal_analytics_ingest_pending_events") or 0.0

    store, clock = FakeStore(), FakeClock()
    buffer = make_buffer(store, clock, batch=10)
    await buffer.submit([record(event_id="warm")])  # the next events wait one interval
    before = scraped()
    calls = [asyncio.ensure_future(buffer.submit([record(), record()])) for _ in range(2)]
    await settle()
    assert scraped() == before + 4
    clock.advance(1.0)
    await asyncio.gather(*calls)
    assert scraped() == before
    await buffer.close()
