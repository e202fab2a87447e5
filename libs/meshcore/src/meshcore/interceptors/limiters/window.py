"""The sliding-window counter both limiters use, and the limiter protocol."""

from __future__ import annotations

from typing import NamedTuple, Protocol

__all__ = ["Decision", "RateLimiter", "sliding_window_decision"]


class Decision(NamedTuple):
    """The answer for one call: allowed, or refused with the seconds to wait before retrying.

    A named tuple rather than a frozen dataclass: one is made for every call, and a frozen
    dataclass sets each field through ``object.__setattr__``, about twice the cost.
    """

    allowed: bool
    remaining: int
    retry_after: float = 0.0


# Every allowed call makes a Decision: built by tuple.__new__ itself, as the named tuple's own
# constructor would after a Python-level call of its own (half the cost).
_new_decision = tuple.__new__


class RateLimiter(Protocol):
    async def hit(self, key: str) -> Decision:
        """Count one call for ``key`` if the limit allows it, and say whether it does."""
        ...


def sliding_window_decision(
    *, previous: int, current: int, elapsed: float, window: float, limit: int
) -> Decision:
    """Whether one more call fits, ``elapsed`` seconds into the current fixed window.

    The estimate is ``previous * (1 - elapsed / window) + current``; the call fits when the
    estimate plus one stays within ``limit``. ``retry_after`` is when the estimate has decayed
    enough for one more call.
    """
    overlap = (window - elapsed) / window
    estimate = previous * overlap + current
    if estimate + 1 <= limit:
        # limit - estimate - 1 >= 0 here, so int() is its floor.
        return _new_decision(Decision, (True, int(limit - estimate - 1), 0.0))
    if current + 1 <= limit and previous > 0:
        # The previous window's share must shrink to limit - current - 1.
        needed_overlap = (limit - current - 1) / previous
        return Decision(False, 0, max(0.0, (overlap - needed_overlap) * window))
    # The current window alone is full: wait for the next one, then for its share to decay.
    until_next = window - elapsed
    needed_overlap = (limit - 1) / current if current else 1.0
    return Decision(False, 0, until_next + (1.0 - needed_overlap) * window)
