"""meshcore.completion: work that finishes whatever happens to the call that started it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from meshcore.completion import Completions
from meshcore.context import call_scope, current_call, time_remaining
from meshcore.errors import NotFound


async def test_cancelling_the_caller_does_not_cancel_the_work() -> None:
    completions = Completions()
    steps: list[str] = []
    release = asyncio.Event()

    async def two_steps() -> str:
        steps.append("first")
        await release.wait()
        steps.append("second")
        return "done"

    caller = asyncio.ensure_future(completions.run(two_steps()))
    await asyncio.sleep(0)
    caller.cancel()  # the client's deadline passed
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await completions.drain()
    assert steps == ["first", "second"]


async def test_the_work_keeps_the_principal_but_not_the_deadline() -> None:
    """Downstream calls made by the work use their own budgets, not the spent client deadline."""
    completions = Completions()
    seen: list[object] = []

    async def look() -> None:
        seen.extend([current_call().request_id, time_remaining()])

    with call_scope(request_id="req-7", deadline=0.001):
        assert time_remaining() is not None
        await completions.run(look())
    assert seen == ["req-7", None]


async def test_a_keyed_piece_of_work_is_found_while_it_runs() -> None:
    completions = Completions()
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 1

    first = asyncio.ensure_future(completions.run(slow(), key="k"))
    await asyncio.sleep(0)
    running = completions.running("k")
    assert running is not None
    second = completions.start(slow(), key="k")
    assert completions.running("k") is running  # retries wait for the first attempt
    release.set()
    assert await first == 1
    await second
    assert completions.running("k") is None


async def test_results_and_errors_reach_a_caller_that_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    completions = Completions()

    async def missing() -> None:
        raise NotFound("project", "p-1")

    async def broken() -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(NotFound):
        await completions.run(missing())
    with caplog.at_level(logging.WARNING, logger="meshcore.completion"):
        completions.start(broken())
        await completions.drain()
    # A domain answer is not a failure; an unexpected error nobody awaited is logged.
    assert [record.getMessage() for record in caplog.records] == [
        "detached work failed: disk on fire"
    ]


async def test_finish_drains_and_then_cancels_what_outlasts_its_bound() -> None:
    completions = Completions()
    quick = completions.start(asyncio.sleep(0))
    stuck = completions.start(asyncio.Event().wait())
    await completions.finish(0.05)
    assert quick.done()
    assert not quick.cancelled()
    assert stuck.cancelled()
