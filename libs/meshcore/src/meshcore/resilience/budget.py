"""RetryBudget: retries may add at most a fixed share of traffic, plus a small floor.

Per-call retry limits alone multiply load during an outage (3 retries = 4x the traffic exactly
when the callee is weakest). A budget bounds the total instead, as Finagle and Linkerd do: every
call deposits ``ratio`` of a retry, every retry withdraws one, over a sliding ``ttl`` window.
``min_retries_per_second`` keeps a floor so a client with little traffic can still retry.

Durations are milliseconds like every meshcore client-side argument; the clock is injectable.
"""

from __future__ import annotations

from collections import deque

from meshcore.clock import SYSTEM_CLOCK, Clock

__all__ = ["RetryBudget"]

_SLOTS = 10  # the window moves in tenths of ``ttl``: cheap to keep, fine enough to be fair


class RetryBudget:
    """A sliding-window retry allowance shared by every call of one client (or service)."""

    def __init__(
        self,
        ratio: float = 0.2,
        min_retries_per_second: float = 10.0,
        ttl: float = 10_000,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if ratio < 0 or min_retries_per_second < 0 or ttl <= 0:
            raise ValueError("ratio and min_retries_per_second must be >= 0, ttl > 0 ms")
        self.ratio = ratio
        self.ttl_seconds = ttl / 1000.0
        self._floor = min_retries_per_second * self.ttl_seconds
        self._slot_seconds = self.ttl_seconds / _SLOTS
        self._clock = clock
        # (slot index, calls, retries), oldest first; the last entry is the current slot.
        self._slots: deque[list[int]] = deque()
        self._calls = 0
        self._retries = 0

    def _current(self) -> list[int]:
        index = int(self._clock.monotonic() / self._slot_seconds)
        slots = self._slots
        if slots and slots[-1][0] == index:
            return slots[-1]
        oldest_kept = index - _SLOTS + 1
        while slots and slots[0][0] < oldest_kept:
            _, calls, retries = slots.popleft()
            self._calls -= calls
            self._retries -= retries
        slot = [index, 0, 0]
        slots.append(slot)
        return slot

    def record_call(self) -> None:
        """Deposit: one original call (not a retry) was made."""
        self._current()[1] += 1
        self._calls += 1

    def try_spend(self) -> bool:
        """Withdraw one retry if the budget allows it; False means do not retry."""
        slot = self._current()
        if self._floor + self.ratio * self._calls - self._retries < 1.0:
            return False
        slot[2] += 1
        self._retries += 1
        return True

    @property
    def available(self) -> float:
        """Retries the budget would allow right now (for metrics and tests)."""
        self._current()
        return max(self._floor + self.ratio * self._calls - self._retries, 0.0)
