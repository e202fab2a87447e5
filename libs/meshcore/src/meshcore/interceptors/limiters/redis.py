"""The Redis-backed limiter: the budget lives in Redis, shared by every replica, and each
replica takes it in leases.

State per key is one hash (``w`` window index, ``c`` current count, ``p`` previous count), so a
key lives in one Redis Cluster slot. Time comes from Redis itself (``TIME``) unless a clock is
injected (tests), so replicas with skewed clocks still agree on the windows.

A replica does not ask Redis once per call. It asks for a *lease*: up to ``n`` calls of the key's
budget, counted in Redis at once by one atomic script, which grants at most half of what is left
(and at least one call while anything is). The calls of the lease are then admitted locally,
until it is used up or ``lease_seconds`` pass, when what is left of it is dropped. The limit is
never exceeded, since every admitted call was counted in Redis first; a lease dropped unused
refuses a little early instead (at most the lease, sized to the replica's own recent calls of the
key). ``n`` starts at one call and doubles each time a lease runs out before it lapses (up to
``max_lease``), halving when one lapses unused: a caller making a call now and then costs one
round trip per call, exactly as before, while a busy caller costs one per lease instead of one
per call (the round trip was most of ValidateToken's cost). Near the limit, the halving of what
is left shrinks leases to single calls, so the last calls are decided one by one.

Calls that arrive while their key's request is in flight wait for its answer, and its grant is
shared among them in arrival order (those it does not cover ask again). Requests that arrive
together travel together: the keys asked for while one pipeline is being sent go out in the next,
a pipeline of EVALSHAs, with at most ``max_pipelines`` in flight. (One connection per concurrent
call also hit redis-py's pool limit, 100, beyond which it refuses at once: under load, calls were
failed open, or closed, without Redis being down.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from meshcore.clock import Clock
from meshcore.interceptors.limiters.window import Decision

__all__ = ["RedisRateLimiter"]

# Returns {granted, remaining, retry_after_ms}: ``granted`` calls (0 when refused) are counted,
# ``remaining`` is what the window allows after them. Lua numbers are doubles but Redis replies
# truncate them to integers, so everything returned is an integer (of milliseconds for time).
_SLIDING_WINDOW_LUA = """
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local wanted = tonumber(ARGV[4])
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
local room = math.floor(limit - estimate)
if room >= 1 then
  local granted = math.min(wanted, math.max(1, math.floor(room / 2)))
  redis.call('HSET', KEYS[1], 'w', index, 'c', c + granted, 'p', p)
  redis.call('PEXPIRE', KEYS[1], window * 2)
  return {granted, room - granted, 0}
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


class _Key:
    """One key's lease, and the calls waiting for the next one."""

    __slots__ = ("lapses_at", "left", "remaining", "size", "waiting")

    def __init__(self) -> None:
        self.left = 0  # calls of the current lease not admitted yet
        self.remaining = 0  # what Redis said the window allows beyond the lease
        self.lapses_at = 0.0  # monotonic time the lease's unused calls are dropped
        self.waiting: list[asyncio.Future[Decision]] | None = None  # None: nothing asked
        self.size = 1  # the next lease asked for


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
        max_lease: int = 1024,
        lease_seconds: float = 0.1,
    ) -> None:
        if min(window_ms, max_requests, max_pipelines, max_lease, lease_seconds) <= 0:
            raise ValueError(
                "window_ms, max_requests, max_pipelines, max_lease and lease_seconds must be "
                "positive"
            )
        self._redis = redis
        self._window_ms = int(window_ms)
        self._limit = int(max_requests)
        self._prefix = prefix
        self._clock = clock
        self._monotonic = time.monotonic if clock is None else clock.monotonic
        self._sha = redis.register_script(_SLIDING_WINDOW_LUA).sha
        self._max_pipelines = max_pipelines
        self._max_lease = max_lease
        self._lease_seconds = lease_seconds
        self._keys: dict[str, _Key] = {}
        self._requests_since_sweep = 0
        self._asking: list[str] = []  # keys whose request no pipeline has taken yet
        self._pipelines = 0  # senders started: sending, or about to take the waiting keys
        self._taker_due = False  # a started sender has not taken its keys yet
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
            max_lease=self._max_lease,
            lease_seconds=self._lease_seconds,
        )

    def take_leased(self, key: str) -> bool:
        """Admit one call of ``key`` from this replica's lease if one is in force, without a
        coroutine (the interceptor's hot path); False: ``hit`` decides."""
        state = self._keys.get(self._prefix + key)
        if state is None or not self._in_force(state):
            return False
        state.left -= 1
        return True

    async def hit(self, key: str) -> Decision:
        full_key = self._prefix + key
        state = self._keys.get(full_key)
        if state is None:
            state = self._keys[full_key] = _Key()
        elif self._in_force(state):
            state.left -= 1
            return Decision(True, state.remaining + state.left)
        decided: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        if state.waiting is not None:  # a request is in flight: share its grant
            state.waiting.append(decided)
        else:
            self._resize(state)
            state.waiting = [decided]
            self._ask(full_key)
        return await decided

    async def close(self) -> None:
        await self._redis.aclose()

    def _in_force(self, state: _Key) -> bool:
        """The lease has calls left, has not lapsed, and no request for the key is in flight
        (calls then queue behind it, in arrival order)."""
        return state.waiting is None and state.left > 0 and self._monotonic() < state.lapses_at

    def _resize(self, state: _Key) -> None:
        """Before asking again: a lease used up in time was too small, one that lapsed unused
        too large."""
        if state.left:
            state.size = max(1, state.size // 2)
            state.left = 0
        elif self._monotonic() < state.lapses_at:
            state.size = min(self._max_lease, state.size * 2)

    def _ask(self, full_key: str) -> None:
        self._asking.append(full_key)
        self._requests_since_sweep += 1
        if self._requests_since_sweep >= 1024:
            self._sweep()
        if not self._taker_due and self._pipelines < self._max_pipelines:
            self._start_sender()

    def _sweep(self) -> None:
        """Forget the keys with no lease in force and nothing asked (idle callers)."""
        self._requests_since_sweep = 0
        now = self._monotonic()
        idle = [
            key
            for key, state in self._keys.items()
            if state.waiting is None and state.lapses_at <= now
        ]
        for key in idle:
            del self._keys[key]

    def _start_sender(self) -> None:
        self._pipelines += 1
        self._taker_due = True
        sender = asyncio.get_running_loop().create_task(self._send())
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)

    async def _send(self) -> None:
        """Send the request of every key asking now in one pipeline (keys asking meanwhile
        wait for the next)."""
        self._taker_due = False
        keys, self._asking = self._asking, []
        states = [self._keys[key] for key in keys]
        # Enough for every call waiting now, and for the lease the key has earned.
        wanted = [max(len(state.waiting or ()), state.size) for state in states]
        try:
            results = await self._results(keys, wanted)
        except Exception as error:  # Redis is down or confused: every waiting call says so
            results = [error] * len(keys)
        except BaseException:  # the sender itself was cancelled (shutdown): so are its calls
            for state in states:
                for decided in state.waiting or ():
                    decided.cancel()
                state.waiting = None
            raise
        finally:
            self._pipelines -= 1
            if self._asking and not self._taker_due:
                self._start_sender()
        for key, state, result in zip(keys, states, results, strict=True):
            self._settle(key, state, result)

    def _settle(self, key: str, state: _Key, result: Any) -> None:
        """Share a grant among the calls waiting for it, in arrival order; keep the rest as the
        lease. Calls it did not cover ask again."""
        waiting = [decided for decided in state.waiting or () if not decided.done()]
        state.waiting = None
        if isinstance(result, Exception):
            for decided in waiting:
                decided.set_exception(result)
            return
        granted, remaining, retry_ms = (int(value) for value in result)
        if not granted:
            refused = Decision(False, 0, retry_ms / 1000.0)
            for decided in waiting:
                decided.set_result(refused)
            return
        admitted = min(granted, len(waiting))
        for index in range(admitted):
            waiting[index].set_result(Decision(True, remaining + granted - 1 - index))
        state.left = granted - admitted
        state.remaining = remaining
        state.lapses_at = self._monotonic() + self._lease_seconds
        if admitted < len(waiting):
            state.size = min(self._max_lease, state.size * 2)
            state.waiting = waiting[admitted:]
            self._ask(key)

    async def _results(self, keys: list[str], wanted: list[int]) -> list[Any]:
        from redis.exceptions import ConnectionError as RedisConnectionError, NoScriptError

        try:
            results = await self._pipeline(keys, wanted)
        except RedisConnectionError:
            # After Redis restarts, every pooled connection is dead and the first command on
            # each fails. Drop the idle ones and try once more on a fresh connection: that tells
            # a restart from an outage (which fails again at once). Calls counted twice are
            # harmless for a limiter.
            await self._redis.connection_pool.disconnect(inuse_connections=False)
            results = await self._pipeline(keys, wanted)
        unknown = [
            index for index, result in enumerate(results) if isinstance(result, NoScriptError)
        ]
        if unknown:  # a restarted or flushed Redis forgot the script: load it, send those again
            self._sha = await self._redis.script_load(_SLIDING_WINDOW_LUA)
            again = await self._pipeline(
                [keys[index] for index in unknown], [wanted[index] for index in unknown]
            )
            for index, result in zip(unknown, again, strict=True):
                results[index] = result
        return results

    async def _pipeline(self, keys: list[str], wanted: list[int]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        window, limit = self._window_ms, self._limit
        now = "" if self._clock is None else str(int(self._clock.time() * 1000))
        for key, count in zip(keys, wanted, strict=True):
            pipe.execute_command("EVALSHA", self._sha, 1, key, window, limit, now, count)
        return list(await pipe.execute(raise_on_error=False))
