"""Helpers for the client-side unit tests: a fake clock and a way to drive it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from meshcore.testing import FakeClock

from tests.support import settle

T = TypeVar("T")


async def drive(clock: FakeClock, work: Awaitable[T], *, step: float = 0.01) -> T:
    """Run ``work`` to completion, advancing the fake clock whenever it is only sleeping."""
    task = asyncio.ensure_future(work)
    for _ in range(1_000_000):
        await settle()
        if task.done():
            return task.result()
        clock.advance(step)
    raise AssertionError("work did not finish")
