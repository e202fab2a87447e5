"""Pieces for background loops that poll a table (outboxes, dispatchers, relays).

Such a loop works through what is due, then waits: until someone commits new work and wakes it,
or until its poll interval passes (for work another replica or a restart left behind).
"""

from __future__ import annotations

import asyncio

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.tasks import cancel_and_wait

__all__ = ["PollWaiter"]


class PollWaiter:
    """``wait()`` returns when ``wake()`` is called or ``interval`` seconds pass on ``clock``."""

    def __init__(self, interval: float, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._interval = interval
        self._clock = clock
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def wait(self) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(self._interval))
        waker = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(sleeper, waker)
            self._woken.clear()
