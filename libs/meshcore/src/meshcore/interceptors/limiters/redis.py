"""The Redis-backed limiter: one atomic Lua script per call, shared by every replica.

State per key is one hash (``w`` window index, ``c`` current count, ``p`` previous count), so a
key lives in one Redis Cluster slot. Time comes from Redis itself (``TIME``) unless a clock is
injected (tests), so replicas with skewed clocks still agree on the windows.
"""

from __future__ import annotations

from typing import Any

from meshcore.clock import Clock
from meshcore.interceptors.limiters.window import Decision

__all__ = ["RedisRateLimiter"]

# Returns {allowed (0/1), remaining, retry_after_ms}. Lua numbers are doubles but Redis replies
# truncate them to integers, so everything returned is an integer of milliseconds.
_SLIDING_WINDOW_LUA = """
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local index = math.floor(now / window)
local state = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(state[1])
local c = tonumber(state[2]) or 0
local p = tonumber(state[3]) or 0
if w == nil then
  c = 0
  p = 0
elseif w < index then
  if w == index - 1 then p = c else p = 0 end
  c = 0
end
local elapsed = now - index * window
local overlap = (window - elapsed) / window
local estimate = p * overlap + c
if estimate + 1 <= limit then
  redis.call('HSET', KEYS[1], 'w', index, 'c', c + 1, 'p', p)
  redis.call('PEXPIRE', KEYS[1], window * 2)
  return {1, math.floor(limit - estimate - 1), 0}
end
local retry
if c + 1 <= limit and p > 0 then
  retry = (overlap - (limit - c - 1) / p) * window
else
  local needed = 1
  if c > 0 then needed = (limit - 1) / c end
  retry = (window - elapsed) + (1 - needed) * window
end
return {0, 0, math.ceil(retry)}
"""


class RedisRateLimiter:
    """Sliding-window limits in Redis; raises ``redis`` errors for the interceptor to handle."""

    def __init__(
        self,
        redis: Any,
        window_ms: int,
        max_requests: int,
        *,
        prefix: str = "meshcore:ratelimit:",
        clock: Clock | None = None,
    ) -> None:
        if window_ms <= 0 or max_requests <= 0:
            raise ValueError("window_ms and max_requests must be positive")
        self._redis = redis
        self._window_ms = int(window_ms)
        self._limit = int(max_requests)
        self._prefix = prefix
        self._clock = clock
        self._script = redis.register_script(_SLIDING_WINDOW_LUA)

    @classmethod
    def from_url(
        cls,
        url: str,
        window_ms: int,
        max_requests: int,
        *,
        client_name: str = "meshcore-ratelimit",
        **kwargs: Any,
    ) -> RedisRateLimiter:
        """A limiter on its own connection pool with short timeouts (a limiter must not stall),
        named ``client_name`` in Redis's CLIENT LIST."""
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=0.25,
            socket_connect_timeout=0.25,
            health_check_interval=30,
            client_name=client_name,
        )
        return cls(client, window_ms, max_requests, **kwargs)

    async def hit(self, key: str) -> Decision:
        from redis.exceptions import ConnectionError as RedisConnectionError

        now = "" if self._clock is None else str(int(self._clock.time() * 1000))
        keys, args = [self._prefix + key], [self._window_ms, self._limit, now]
        try:
            allowed, remaining, retry_ms = await self._script(keys=keys, args=args)
        except RedisConnectionError:
            # After Redis restarts, every pooled connection is dead and the first command on
            # each fails. Drop the idle ones and try once more on a fresh connection: that tells
            # a restart from an outage (which fails again at once). A hit counted twice is
            # harmless for a limiter.
            await self._redis.connection_pool.disconnect(inuse_connections=False)
            allowed, remaining, retry_ms = await self._script(keys=keys, args=args)
        return Decision(bool(allowed), int(remaining), int(retry_ms) / 1000.0)

    async def close(self) -> None:
        await self._redis.aclose()
