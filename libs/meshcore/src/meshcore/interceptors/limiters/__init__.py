"""Rate limiters behind ``RateLimitInterceptor``: in-process (embedded mode) and Redis-backed.

Both count with the same sliding-window counter (the current fixed window plus the previous
one weighted by how much of it still overlaps the sliding window), so a replica set sharing a
Redis behaves like one embedded process. Rejected calls are not counted: hammering a limit does
not extend it.
"""

from meshcore.interceptors.limiters.memory import InProcessRateLimiter
from meshcore.interceptors.limiters.redis import RedisRateLimiter
from meshcore.interceptors.limiters.window import Decision, RateLimiter, sliding_window_decision

__all__ = [
    "Decision",
    "InProcessRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "sliding_window_decision",
]
