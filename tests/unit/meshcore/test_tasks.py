"""``cancel_and_wait``: the tasks end, their cancellation stays theirs, the caller's stays the
caller's."""

from __future__ import annotations

import asyncio

import pytest
from meshcore.tasks import cancel_and_wait


async def test_the_tasks_are_cancelled_and_ended() -> None:
    first = asyncio.ensure_future(asyncio.Event().wait())
    second = asyncio.ensure_future(asyncio.Event().wait())
    await cancel_and_wait(first, None, second)
    assert first.cancelled()
    assert second.cancelled()


async def test_a_task_that_ends_with_another_error_raises_it() -> None:
    async def fails_on_the_way_out() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise ValueError("cleanup failed")

    task = asyncio.ensure_future(fails_on_the_way_out())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="cleanup failed"):
        await cancel_and_wait(task)


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    """A task that outlives its cancellation: the caller's time limit still ends the wait
    (``suppress(CancelledError)`` around ``await task`` would swallow it and wait on)."""
    release = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await release.wait()
                return
            except asyncio.CancelledError:
                continue  # ignores its cancellation until released

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cancel_and_wait(task)
    assert not task.done()
    release.set()
    await task
