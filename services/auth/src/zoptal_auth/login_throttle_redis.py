"""The login throttle's records in Redis, shared by every Auth replica.

The same records and rules as ``login_throttle.InMemoryLoginStore``, each step one atomic Lua
script. The (account, client) and account records share a hash tag (``{<account hash>}``), so
one script touches one Redis Cluster slot; the client's record is another script, sent in the
same pipeline (one round trip). Times are milliseconds since the epoch from the caller's clock,
stored in the records, so a test can move time; keys expire on their own once nothing in them
matters any more.
"""

from __future__ import annotations

from typing import Any

from zoptal_auth.login_throttle import ADMITTED, LoginThrottlePolicy

__all__ = ["RedisLoginStore"]

# KEYS: pair, account. ARGV: op ('check' | 'fail' | 'ok'), now, memory, free, base, cap,
# account_free, account_cap (all times in ms). 'check' returns the ms to wait, or -1.
_ACCOUNT_LUA = """
local op = ARGV[1]
local now = tonumber(ARGV[2])
local memory = tonumber(ARGV[3])
local function fmt(x) return string.format('%.0f', x) end
local function load(key)
  local v = redis.call('HMGET', key, 'f', 'b', 'l', 't')
  local f, b, l = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0
  if now - l > memory then f = 0; b = 0 end
  return f, b, tonumber(v[4]) or 0
end
if op == 'ok' then
  redis.call('DEL', KEYS[1])
  return -1
end
if op == 'fail' then
  local base = tonumber(ARGV[5])
  local function bump(key, free, cap)
    local f, b = load(key)
    f = f + 1
    if f > free then
      local over = math.min(f - free - 1, 60)
      b = math.max(b, now + math.min(cap, base * 2 ^ over))
    end
    redis.call('HSET', key, 'f', f, 'b', fmt(b), 'l', fmt(now))
    redis.call('PEXPIRE', key, math.floor(memory + cap))
  end
  bump(KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[6]))
  bump(KEYS[2], tonumber(ARGV[7]), tonumber(ARGV[8]))
  return -1
end
local account_cap = tonumber(ARGV[8])
local _, pb, ticket = load(KEYS[1])
if now < pb then return math.ceil(pb - now) end
local _, ab = load(KEYS[2])
if now >= ab then
  if ticket ~= 0 then redis.call('HDEL', KEYS[1], 't') end
  return -1
end
if ticket ~= 0 and ticket <= now and now <= ticket + account_cap then
  redis.call('HDEL', KEYS[1], 't')
  return -1
end
if ticket == 0 or now > ticket + account_cap then
  ticket = ab
  redis.call('HSET', KEYS[1], 't', fmt(ticket))
  redis.call('PEXPIRE', KEYS[1], math.floor(memory + 2 * account_cap))
end
return math.ceil(ticket - now)
"""

# KEYS: client. ARGV: op ('check' | 'fail'), now, window, max failures (times in ms).
_CLIENT_LUA = """
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'n', 'e')
local n, e = tonumber(v[1]) or 0, tonumber(v[2]) or 0
if now >= e then
  n = 0
  e = now + window
end
if ARGV[1] == 'check' then
  if n >= tonumber(ARGV[4]) then return math.ceil(e - now) end
  return -1
end
redis.call('HSET', KEYS[1], 'n', n + 1, 'e', string.format('%.0f', e))
redis.call('PEXPIRE', KEYS[1], math.ceil(e - now))
return -1
"""


class RedisLoginStore:
    """``LoginStore`` on Redis; raises ``redis`` errors for ``LoginThrottle`` to handle."""

    def __init__(
        self, redis: Any, policy: LoginThrottlePolicy, *, prefix: str = "zoptal:auth:login:"
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._account_script = redis.register_script(_ACCOUNT_LUA)
        self._client_script = redis.register_script(_CLIENT_LUA)
        ms = 1000.0
        self._account_args = [
            policy.memory * ms,
            policy.free_failures,
            policy.backoff_base * ms,
            policy.backoff_max * ms,
            policy.account_free_failures,
            policy.account_backoff_max * ms,
        ]
        self._client_args = [policy.client_window * ms, policy.client_max_failures]

    @classmethod
    def from_url(cls, url: str, policy: LoginThrottlePolicy) -> RedisLoginStore:
        """A store on its own connection pool with short timeouts: a login must not stall."""
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=0.25,
            socket_connect_timeout=0.25,
            health_check_interval=30,
            client_name="zoptal-auth-login-throttle",
        )
        return cls(client, policy)

    async def check(self, account: str, client: str, now: float) -> float:
        waits = await self._both("check", account, client, now)
        refused = [wait for wait in waits if wait >= 0]
        return max(refused) / 1000.0 if refused else ADMITTED

    async def failed(self, account: str, client: str, now: float) -> None:
        await self._both("fail", account, client, now)

    async def succeeded(self, account: str, client: str, now: float) -> None:
        keys = self._account_keys(account, client)
        await self._account_script(keys=keys, args=["ok", int(now * 1000), *self._account_args])

    async def close(self) -> None:
        await self._redis.aclose()

    def _account_keys(self, account: str, client: str) -> list[str]:
        tag = f"{self._prefix}{{{account}}}"
        return [f"{tag}:p:{client}", f"{tag}:a"]

    async def _both(self, op: str, account: str, client: str, now: float) -> list[int]:
        from redis.exceptions import ConnectionError as RedisConnectionError

        try:
            return await self._pipeline(op, account, client, int(now * 1000))
        except RedisConnectionError:
            # After Redis restarts every pooled connection is dead and the first command on
            # each fails: drop the idle ones and try once more on a fresh connection.
            await self._redis.connection_pool.disconnect(inuse_connections=False)
            return await self._pipeline(op, account, client, int(now * 1000))

    async def _pipeline(self, op: str, account: str, client: str, now_ms: int) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._client_script(
                keys=[f"{self._prefix}c:{client}"],
                args=[op, now_ms, *self._client_args],
                client=pipe,
            )
            await self._account_script(
                keys=self._account_keys(account, client),
                args=[op, now_ms, *self._account_args],
                client=pipe,
            )
            results = await pipe.execute()
        return [int(result) for result in results]
