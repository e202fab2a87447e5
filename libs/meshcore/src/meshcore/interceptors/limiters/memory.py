"""The in-process limiter for embedded mode and single replicas."""

from __future__ import annotations

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.interceptors.limiters.window import Decision, sliding_window_decision

__all__ = ["InProcessRateLimiter"]


class InProcessRateLimiter:
    """Sliding-window counters per key in a dict; idle keys are dropped as windows roll over.

    Not shared between processes: with several replicas each one enforces its own limit.
    """

    def __init__(
        self,
        window_ms: int,
        max_requests: int,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_keys: int = 100_000,
    ) -> None:
        if window_ms <= 0 or max_requests <= 0:
            raise ValueError("window_ms and max_requests must be positive")
        self._window = window_ms / 1000.0
        self._limit = max_requests
        self._clock = clock
        self._max_keys = max_keys
        # key -> [window index, count in that window, count in the window before]
        self._counters: dict[str, list[int]] = {}
        self._swept_window = -1

    async def hit(self, key: str) -> Decision:
        return self.hit_now(key)

    def hit_now(self, key: str) -> Decision:
        """``hit`` without the coroutine: the in-process check never waits."""
        counter, elapsed = self._counter(key)
        return self._decide(counter, elapsed)

    def refusal(self, key: str) -> float | None:
        """``hit_now`` for the interceptor's hot path: None when the call is allowed (and
        counted), else the seconds to wait before retrying.

        A key with fewer calls than the limit in this window and the one before is allowed
        without computing the estimate: the estimate weighs the previous window by at most one,
        so it cannot be more than their sum. Only callers near their limit pay for the exact
        sliding-window decision.
        """
        counter, elapsed = self._counter(key)
        if counter[1] + counter[2] < self._limit:
            counter[1] += 1
            return None
        decision = self._decide(counter, elapsed)
        return None if decision.allowed else decision.retry_after

    def _decide(self, counter: list[int], elapsed: float) -> Decision:
        """The sliding-window decision for ``counter``'s key; an allowed call is counted."""
        decision = sliding_window_decision(
            previous=counter[2],
            current=counter[1],
            elapsed=elapsed,
            window=self._window,
            limit=self._limit,
        )
        if decision.allowed:
            counter[1] += 1
        return decision

    def _counter(self, key: str) -> tuple[list[int], float]:
        """``key``'s counters rolled over to the current window, and the seconds into it."""
        now = self._clock.monotonic()
        index = int(now // self._window)
        if index != self._swept_window:
            self._sweep(index)
        counter = self._counters.get(key)
        if counter is None:
            if len(self._counters) >= self._max_keys:
                self._counters.pop(next(iter(self._counters)))
            counter = self._counters[key] = [index, 0, 0]
        elif counter[0] != index:
            counter[2] = counter[1] if counter[0] == index - 1 else 0
            counter[1] = 0
            counter[0] = index
        return counter, now - index * self._window

    def _sweep(self, index: int) -> None:
        # Keys untouched for two windows count nothing any more: forget them.
        self._swept_window = index
        stale = [key for key, counter in self._counters.items() if counter[0] < index - 1]
        for key in stale:
            del self._counters[key]
