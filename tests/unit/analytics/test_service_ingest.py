"""zoptal_analytics.service: a batch is validated in slices, all or nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.errors import InvalidArgument
from meshcore.testing import FakeClock
from zoptal_analytics.buffer import EventBuffer
from zoptal_analytics.domain import EventInput
from zoptal_analytics.realtime import InProcessRealTime
from zoptal_analytics.service import AnalyticsService

from .conftest import CALLER, NOW_MS


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
