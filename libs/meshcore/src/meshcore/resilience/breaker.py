"""CircuitBreaker: the seed's ``new CircuitBreaker(5, 60000, 10000).execute(fn)``, in asyncio.

* **closed**: calls pass. ``failure_threshold`` consecutive callee failures, each within
  ``monitoring_period`` of the last, open the circuit. Consecutive (a success resets the count),
  as Envoy's outlier detection counts: the trip point then does not depend on traffic volume,
  and stale failures from long ago never add up to a trip.
* **open**: calls fail at once with ``CircuitOpenError`` ("Circuit breaker is OPEN", an
  UNAVAILABLE whose ``retry_after`` is the time left) until ``recovery_timeout`` has passed.
* **half-open**: at most ``half_open_max_calls`` probe calls are admitted; every other caller
  still gets ``CircuitOpenError``. One failed probe reopens the circuit; when all admitted
  probes have succeeded it closes.

Only failures that mean the callee is unwell count: UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL,
UNKNOWN and connection failures. Business answers (NOT_FOUND, INVALID_ARGUMENT, ...) prove the
callee is alive and count as successes. Durations are milliseconds, as in the seed.

Concurrency: every state change happens between awaits on one event loop, so any number of
asyncio callers may share a breaker without a lock. Results of calls that started in an earlier
state (a slow call finishing after the circuit opened) are ignored, so they cannot close a
circuit that was opened after they began.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import Unavailable
from meshcore.resilience.status import is_connection_failure, status_code_of

__all__ = [
    "CALLEE_FAILURE_CODES",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "is_callee_failure",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

CALLEE_FAILURE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)

_NOT_A_PROBE = 0


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpenError(Unavailable):
    """The breaker refused the call without sending it (so it is always safe to retry)."""

    def __init__(self, retry_after: float | None = None, *, endpoint: str = "") -> None:
        super().__init__("Circuit breaker is OPEN", retry_after=retry_after)
        self.endpoint = endpoint


def is_callee_failure(error: BaseException) -> bool:
    """True for failures that say the callee is unwell (what a breaker counts)."""
    if isinstance(error, CircuitOpenError):
        return False  # our own refusal says nothing new about the callee
    code = status_code_of(error)
    if code is not None:
        return code in CALLEE_FAILURE_CODES
    return is_connection_failure(error)


StateListener = Callable[["CircuitBreaker", CircuitState, CircuitState], None]


class CircuitBreaker:
    """Closed / open / half-open breaker for one endpoint (or one dependency)."""

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 60_000,
        monitoring_period: float = 10_000,
        *,
        half_open_max_calls: int = 1,
        name: str = "",
        clock: Clock = SYSTEM_CLOCK,
        on_state_change: StateListener | None = None,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1:
            raise ValueError("failure_threshold and half_open_max_calls must be at least 1")
        if recovery_timeout < 0 or monitoring_period <= 0:
            raise ValueError("recovery_timeout and monitoring_period must be positive ms")
        self.failure_threshold = failure_threshold
        self.recovery_timeout_seconds = recovery_timeout / 1000.0
        self.monitoring_period_seconds = monitoring_period / 1000.0
        self.half_open_max_calls = half_open_max_calls
        self.name = name
        self._clock = clock
        self._on_state_change = on_state_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._last_failure_at = 0.0
        self._opened_at = 0.0
        # Each half-open period gets a new generation; a probe's ticket is its generation.
        self._generation = 0
        self._probes_admitted = 0
        self._probes_succeeded = 0

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose recovery time has passed reads half-open."""
        if self._state is CircuitState.OPEN and self._recovery_elapsed():
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allows_request(self) -> bool:
        """Whether ``acquire`` would admit a call now (balancers skip endpoints that would not)."""
        state = self._state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return self._recovery_elapsed()
        return self._probes_admitted < self.half_open_max_calls

    def _recovery_elapsed(self) -> bool:
        return self._clock.monotonic() - self._opened_at >= self.recovery_timeout_seconds

    # -- the call protocol: acquire, then exactly one of success/failure/release ----------

    def acquire(self) -> int:
        """Admit one call or raise ``CircuitOpenError``; returns the ticket for the outcome."""
        if self._state is CircuitState.CLOSED:
            return _NOT_A_PROBE
        if self.state is CircuitState.OPEN:
            remaining = self.recovery_timeout_seconds - (self._clock.monotonic() - self._opened_at)
            raise CircuitOpenError(max(remaining, 0.0), endpoint=self.name)
        if self._probes_admitted >= self.half_open_max_calls:
            raise CircuitOpenError(None, endpoint=self.name)
        self._probes_admitted += 1
        return self._generation

    def on_success(self, ticket: int) -> None:
        if ticket == _NOT_A_PROBE:
            if self._state is CircuitState.CLOSED:
                self._failures = 0
            return
        if ticket == self._generation and self._state is CircuitState.HALF_OPEN:
            self._probes_succeeded += 1
            if self._probes_succeeded >= self.half_open_max_calls:
                self._transition(CircuitState.CLOSED)

    def on_failure(self, ticket: int) -> None:
        now = self._clock.monotonic()
        if ticket == _NOT_A_PROBE:
            if self._state is not CircuitState.CLOSED:
                return
            if now - self._last_failure_at > self.monitoring_period_seconds:
                self._failures = 0
            self._failures += 1
            self._last_failure_at = now
            if self._failures >= self.failure_threshold:
                self._transition(CircuitState.OPEN)
            return
        if ticket == self._generation and self._state is CircuitState.HALF_OPEN:
            self._transition(CircuitState.OPEN)

    def on_release(self, ticket: int) -> None:
        """The call ended without a verdict (cancelled): give its probe slot back."""
        if (
            ticket != _NOT_A_PROBE
            and ticket == self._generation
            and self._state is CircuitState.HALF_OPEN
            and self._probes_admitted > 0
        ):
            self._probes_admitted -= 1

    def reset(self) -> None:
        """Close the circuit now (an active health check proved the endpoint serves again)."""
        self._transition(CircuitState.CLOSED)

    def record(self, ticket: int, error: BaseException | None) -> None:
        """Route a finished call's outcome (``None`` for success) to the right transition.

        A business status (NOT_FOUND, ...) proves the callee answered: a success. A
        cancellation or an exception that is no status at all (a bug in the caller's own code)
        says nothing about the callee: the call's slot is released without a verdict.
        """
        if error is None:
            self.on_success(ticket)
        elif isinstance(error, asyncio.CancelledError):
            self.on_release(ticket)
        elif is_callee_failure(error):
            self.on_failure(ticket)
        elif status_code_of(error) is not None:
            self.on_success(ticket)
        else:
            self.on_release(ticket)

    async def execute(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` through the breaker, as the seed's ``circuitBreaker.execute(fn)``."""
        ticket = self.acquire()
        try:
            result = await fn()
        except BaseException as error:
            self.record(ticket, error)
            raise
        self.on_success(ticket)
        return result

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        if new is CircuitState.OPEN:
            self._opened_at = self._clock.monotonic()
        elif new is CircuitState.HALF_OPEN:
            self._generation += 1
            self._probes_admitted = 0
            self._probes_succeeded = 0
        else:
            self._failures = 0
        logger.info("circuit %s: %s -> %s", self.name or "<unnamed>", old.value, new.value)
        if self._on_state_change is not None:
            self._on_state_change(self, old, new)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"
