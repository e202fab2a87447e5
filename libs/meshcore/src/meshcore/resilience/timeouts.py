"""``with_timeout`` and ``validate_response``: the seed's ``ServiceMeshUtils`` helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc

from meshcore.clock import SYSTEM_CLOCK, Clock, SystemClock
from meshcore.errors import DeadlineExceeded, MeshError
from meshcore.tasks import cancel_and_wait

__all__ = ["InvalidResponse", "validate_response", "with_timeout"]

T = TypeVar("T")


async def with_timeout(
    awaitable: Awaitable[T],
    ms: float,
    message: str = "operation timed out",
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """Await ``awaitable`` for at most ``ms`` milliseconds, else cancel it and raise
    ``DeadlineExceeded(message)`` (a DEADLINE_EXCEEDED status, like the seed's timeout error).

    For gRPC calls prefer the call's own deadline (``timeout=``), which also tells the server
    to stop; this helper is for composite work that has no deadline of its own.
    """
    seconds = ms / 1000.0
    if isinstance(clock, SystemClock):
        try:
            async with asyncio.timeout(seconds):
                return await awaitable
        except TimeoutError:
            raise DeadlineExceeded(message) from None
    # An injected clock: race the work against the clock's own sleep.
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    if work.done():
        return work.result()
    await cancel_and_wait(work)
    raise DeadlineExceeded(message)


class InvalidResponse(MeshError):
    """A peer answered OK but with nothing usable (empty, or an error inside the reply)."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, operation: str, problem: str) -> None:
        super().__init__(f"{operation}: {problem}")
        self.operation = operation
        self.problem = problem


def validate_response(response: T | None, operation: str) -> T:
    """Return ``response`` if usable, as the seed's ``validateResponse(resp, operation)``.

    Raises ``InvalidResponse`` when it is missing, or carries a non-empty ``error`` field
    (replies that report failure in-band rather than by status).
    """
    if response is None:
        raise InvalidResponse(operation, "empty response")
    error: Any = getattr(response, "error", None)
    if error:
        raise InvalidResponse(operation, str(error))
    return response
