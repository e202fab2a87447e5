"""Retries: exponential backoff with full jitter, a retry budget and server pushback.

``retry_with_backoff(fn, max_retries, base_delay)`` follows the seed's
``ServiceMeshUtils.retryWithBackoff`` (delays in milliseconds). The wait before retry ``n``
(0-based) is uniform in ``[0, min(max_delay, base_delay * 2**n)]`` ("full jitter", AWS
Architecture Blog): synchronised clients spread out instead of retrying in waves. A server's
pushback (gRFC A6 ``grpc-retry-pushback-ms``, meshcore's ``retry-after``) replaces the computed
wait; a pushback that says "do not retry" stops at once.

Which failures are retried is the caller's decision, through ``retry_on``. The default retries
UNAVAILABLE, CANCELLED and connection failures, and RESOURCE_EXHAUSTED only when the server said
when. CANCELLED is on the list because a status (not ``asyncio.CancelledError``) means the
*server* cancelled the call: a replica shutting down cancels what it could not finish in its
grace period, and the call is safe to send elsewhere when the method is idempotent.
Whether a *method* may be retried at all (idempotency) is decided by the typed clients, which
only pass idempotent calls through here (see ``RetryPolicy.retry_on_for``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.resilience.breaker import CircuitOpenError
from meshcore.resilience.budget import RetryBudget
from meshcore.resilience.status import (
    DO_NOT_RETRY,
    is_connection_failure,
    pushback_seconds,
    status_code_of,
)
from meshcore.timeutil import backoff

MIN_RETRY_SECONDS = 0.05
"""A retry is started only if at least this much of the deadline would be left for it."""

__all__ = [
    "RetryPolicy",
    "is_retryable",
    "is_unsent",
    "retry_after_failure",
    "retry_with_backoff",
]

T = TypeVar("T")

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


def is_retryable(error: BaseException) -> bool:
    """Default retry predicate for idempotent calls."""
    code = status_code_of(error)
    if code in RETRYABLE_CODES:
        return True
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return pushback_seconds(error) is not None
    return code is None and is_connection_failure(error)


def is_unsent(error: BaseException) -> bool:
    """Failures where the request provably never left this process: safe for any method."""
    return isinstance(error, CircuitOpenError)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry settings for one client; durations in milliseconds like the seed.

    ``max_retries`` counts retries, not attempts: 3 means at most 4 attempts.
    """

    max_retries: int = 3
    base_delay: float = 50.0
    max_delay: float = 2_000.0
    retry_on: Callable[[BaseException], bool] = field(default=is_retryable)

    def retry_on_for(self, idempotent: bool) -> Callable[[BaseException], bool]:
        """Idempotent methods retry on ``retry_on``; the rest only on unsent failures."""
        return self.retry_on if idempotent else is_unsent


async def retry_with_backoff(
    fn: Callable[[], Awaitable[T]],
    max_retries: int = 3,
    base_delay: float = 1_000,
    *,
    max_delay: float = 30_000,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    budget: RetryBudget | None = None,
    deadline: float | None = None,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn`` until it succeeds, a failure is not retryable, or retries run out.

    ``deadline`` is a ``clock.monotonic()`` instant: no retry starts, and no backoff waits,
    past it. ``budget`` (shared across calls) can refuse a retry; the last failure is then
    raised unchanged, so callers always see the callee's own error.
    """
    if max_retries < 0:
        raise ValueError("max_retries must be >= 0")
    if budget is not None:
        budget.record_call()
    try:
        return await fn()
    except Exception as error:
        return await retry_after_failure(
            fn,
            error,
            max_retries,
            base_delay,
            max_delay=max_delay,
            retry_on=retry_on,
            budget=budget,
            deadline=deadline,
            clock=clock,
            rng=rng,
        )


async def retry_after_failure(
    fn: Callable[[], Awaitable[T]],
    error: Exception,
    max_retries: int,
    base_delay: float,
    *,
    max_delay: float,
    retry_on: Callable[[BaseException], bool],
    budget: RetryBudget | None,
    deadline: float | None,
    clock: Clock,
    rng: random.Random | None = None,
) -> T:
    """The retry loop once ``fn``'s first attempt has failed with ``error``.

    Split from ``retry_with_backoff`` so the call path can make its first attempt inline and
    pay for the retry machinery only when a call actually fails.
    """
    chooser = rng or _RNG
    base, cap = base_delay / 1000.0, max_delay / 1000.0
    attempt = 0
    while True:
        if attempt >= max_retries or not retry_on(error):
            raise error
        wait = pushback_seconds(error)
        if wait == DO_NOT_RETRY:
            raise error
        if wait is None or isinstance(error, CircuitOpenError):
            # A breaker's retry_after is its recovery time, not a server's request: other
            # replicas may be fine, so back off as usual.
            wait = backoff(attempt + 1, base, cap, chooser)
        if deadline is not None and clock.monotonic() + wait + MIN_RETRY_SECONDS >= deadline:
            # Too little time would be left for the retry to succeed: answer with the error
            # the callee really gave, not a DEADLINE_EXCEEDED of our own making.
            raise error
        if budget is not None and not budget.try_spend():
            raise error
        attempt += 1
        await clock.sleep(wait)
        try:
            return await fn()
        except Exception as next_error:
            error = next_error


_RNG = random.Random()
# Reseeded in a forked child (Celery's prefork pool): jitter that repeats across processes
# would send their retries at the same moments, which is what jitter is there to prevent.
os.register_at_fork(after_in_child=_RNG.seed)
