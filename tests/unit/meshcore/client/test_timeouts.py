"""with_timeout and validate_response, the seed's ServiceMeshUtils helpers."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from meshcore.errors import DeadlineExceeded
from meshcore.resilience import InvalidResponse, validate_response, with_timeout
from meshcore.testing import FakeClock

from tests.support import settle


async def test_with_timeout_returns_the_result_in_time(clock: FakeClock) -> None:
    """Work that finishes before the timeout returns its value and leaves no timer behind."""

    async def quick() -> int:
        return 42

    assert await with_timeout(quick(), 10_000, "too slow", clock=clock) == 42
    await settle()
    assert clock.pending_sleepers == 0


async def test_with_timeout_cancels_and_raises_deadline_exceeded(clock: FakeClock) -> None:
    """After the timeout the work is cancelled and DEADLINE_EXCEEDED carries the message."""
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.ensure_future(
        with_timeout(forever(), 10_000, "User lookup timed out", clock=clock)
    )
    await settle()
    clock.advance(9.999)
    await settle()
    assert not task.done()
    clock.advance(0.001)
    await settle()
    with pytest.raises(DeadlineExceeded, match="User lookup timed out") as caught:
        await task
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert cancelled.is_set()


async def test_with_timeout_on_the_system_clock_uses_real_deadlines() -> None:
    """The default clock path raises the same typed error (1 ms timeout, no real wait)."""
    with pytest.raises(DeadlineExceeded, match="slow"):
        await with_timeout(asyncio.Event().wait(), 1, "slow")


def test_validate_response_passes_good_replies_through() -> None:
    """A reply without an in-band error is returned unchanged."""
    reply = {"id": "p1"}
    assert validate_response(reply, "Get project") is reply


class ReplyWithError:
    error = "project store offline"


@pytest.mark.parametrize(
    ("reply", "message"),
    [(None, "Get project: empty response"), (ReplyWithError(), "project store offline")],
)
def test_validate_response_refuses_empty_or_failed_replies(reply: object, message: str) -> None:
    """A missing reply, or one reporting an error in-band, raises naming the operation."""
    with pytest.raises(InvalidResponse, match=message):
        validate_response(reply, "Get project")
