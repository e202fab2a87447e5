"""Injectable time, so every time-driven part of meshcore is tested without sleeping.

Production code takes a ``Clock`` and defaults to ``SYSTEM_CLOCK``; tests pass
``meshcore.testing.FakeClock`` and move time by hand.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (for timestamps and token expiry)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; a fake clock returns once its time has been advanced that far."""
        ...


class SystemClock:
    # The C functions themselves, not methods that call them: servers and clients read the
    # clock several times per call, and each method would add a Python frame to every reading.
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
