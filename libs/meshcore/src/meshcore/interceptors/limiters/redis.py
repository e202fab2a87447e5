"""The Redis-backed limiter: one atomic Lua script per call, shared by every replica.

State per key is one hash (``w`` window index, ``c`` current count, ``p`` previous count), so a
key lives in one Redis Cluster slot. Time comes from Redis itself (``TIME``) unless a clock is
injected (tests), so replicas with skewed clocks still agree on the windows.

Calls that arrive together travel together: the hits made while one pipeline is being sent
go out in the next one, a pipeline of EVALSHAs (each script still atomic, each call still its
own decision, in arrival order), with at most ``max_pipelines`` in flight. A burst of concurrent
calls then costs a few round trips and connections instead of one each: a third of the client
CPU per hit, and no more connections than ``max_pipelines``. (One connection per concurrent
hit also hit redis-py's pool limit, 100, beyond which it refuses at once: under load, calls
were failed open, or closed, without Redis being down.)
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

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


class _Hit(NamedTuple):
    key: str
    now: str
    decided: asyncio.Future[Any]


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
        max_pipelines: int = 1,
    ) -> None:
        if window_ms <= 0 or max_requests <= 0 or max_pipelines <= 0:
            raise ValueError("window_ms, max_requests and max_pipelines must be positive")
        self._redis = redis
        self._window_ms = int(window_ms)
        self._limit = int(max_requests)
        self._prefix = prefix
        self._clock = clock
        self._sha = redis.register_script(_SLIDING_WINDOW_LUA).sha
        self._max_pipelines = max_pipelines
        self._waiting: list[_Hit] = []  # hits no pipeline has taken yet
        self._pipelines = 0  # senders started: sending, or about to take the waiting hits
        self._taker_due = False  # a started sender has not taken its hits yet
        self._senders: set[asyncio.Task[None]] = set()

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

    def sharing_connections(self, max_requests: int, *, prefix: str) -> RedisRateLimiter:
        """Another limit (``max_requests`` per the same window, keys under ``prefix``) on this
        limiter's Redis client; closing this limiter closes it for both."""
        return RedisRateLimiter(
            self._redis,
            self._window_ms,
            max_requests,
            prefix=prefix,
            clock=self._clock,
            max_pipelines=self._max_pipelines,
        )

    async def hit(self, key: str) -> Decision:
        now = "" if self._clock is None else str(int(self._clock.time() * 1000))
        decided: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Hit(self._prefix + key, now, decided))
        if not self._taker_due and self._pipelines < self._max_pipelines:
            self._start_sender()
        allowed, remaining, retry_ms = await decided
        return Decision(bool(allowed), int(remaining), int(retry_ms) / 1000.0)

    async def close(self) -> None:
        await self._redis.aclose()

    def _start_sender(self) -> None:
        self._pipelines += 1
        self._taker_due = True
        sender = asyncio.get_running_loop().create_task(self._send())
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)

    async def _send(self) -> None:
        """Send every hit waiting now in one pipeline (hits made meanwhile wait for the next)."""
        self._taker_due = False
        hits, self._waiting = self._waiting, []
        try:
            results = await self._results(hits)
        except Exception as error:  # Redis is down or confused: every call of the batch says so
            results = [error] * len(hits)
        except BaseException:  # the sender itself was cancelled (shutdown): so are its calls
            for hit in hits:
                hit.decided.cancel()
            raise
        finally:
            self._pipelines -= 1
            if self._waiting and not self._taker_due:
                self._start_sender()
        for hit, result in zip(hits, results, strict=True):
            if hit.decided.done():  # the call went away (cancelled); it was counted anyway
                continue
            if isinstance(result, Exception):
                hit.decided.set_exception(result)
            else:
                hit.decided.set_result(result)

    async def _results(self, hits: list[_Hit]) -> list[Any]:
        from redis.exceptions import ConnectionError as RedisConnectionError, NoScriptError

        try:
            results = await self._pipeline(hits)
        except RedisConnectionError:
            # After Redis restarts, every pooled connection is dead and the first command on
            # each fails. Drop the idle ones and try once more on a fresh connection: that tells
            # a restart from an outage (which fails again at once). A hit counted twice is
            # harmless for a limiter.
            await self._redis.connection_pool.disconnect(inuse_connections=False)
            results = await self._pipeline(hits)
        unknown = [
            index for index, result in enumerate(results) if isinstance(result, NoScriptError)
        ]
        if unknown:  # a restarted or flushed Redis forgot the script: load it, send those again
            self._sha = await self._redis.script_load(_SLIDING_WINDOW_LUA)
            again = await self._pipeline([hits[index] for index in unknown])
            for index, result in zip(unknown, again, strict=True):
                results[index] = result
        return results

    async def _pipeline(self, hits: list[_Hit]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        window, limit = self._window_ms, self._limit
        for hit in hits:
            pipe.execute_command("EVALSHA", self._sha, 1, hit.key, window, limit, hit.now)
        return list(await pipe.execute(raise_on_error=False))
