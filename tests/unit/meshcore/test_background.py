"""Background polling loops wait for a wake-up or their interval, and back off by doubling."""

from __future__ import annotations

import asyncio

from meshcore.background import PollWaiter
from meshcore.testing import FakeClock


async def test_wait_ends_when_woken_before_the_interval() -> None:
    """Committed work wakes the loop at once; time need not pass."""
    clock = FakeClock()
    waiter = PollWaiter(30.0, clock=clock)
    waiting = asyncio.create_task(waiter.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    waiter.wake()
    await asyncio.wait_for(waiting, 1)


async def test_wait_ends_when_the_interval_passes() -> None:
    """Without a wake-up the loop still polls every interval."""
    clock = FakeClock()
    waiter = PollWaiter(5.0, clock=clock)
    waiting = asyncio.create_task(waiter.wait())
    for _ in range(3):  # let the waiter start its sleep on the fake clock
        await asyncio.sleep(0)
    assert clock.pending_sleepers == 1
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(0.1)
    await asyncio.wait_for(waiting, 1)
