"""The Redis limiter against the real Redis: two server replicas share one limit."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any, ClassVar

import grpc
import grpc.aio
import pytest
import redis.asyncio
from meshcore.interceptors import RateLimitInterceptor
from meshcore.interceptors.limiters import RedisRateLimiter
from meshcore.testing import FakeClock
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.redis


def _identity(value: bytes) -> bytes:
    return value


async def _replica(stack: AsyncExitStack, limiter: Any, **options: Any) -> Any:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    interceptor = RateLimitInterceptor(
        limiter=limiter,
        key_generator=lambda call: "shared-caller",
        registry=options.pop("registry", CollectorRegistry()),
        **options,
    )
    server = grpc.aio.server(interceptors=[interceptor])
    handler = grpc.unary_unary_rpc_method_handler(
        echo, request_deserializer=_identity, response_serializer=_identity
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.E", {"C": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stack.push_async_callback(server.stop, None)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stack.push_async_callback(channel.close)
    return channel.unary_unary("/t.E/C")


async def _outcome(call: Any) -> str:
    try:
        await call(b"x")
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return "OK"


async def test_two_replicas_share_one_limit(redis_url: str) -> None:
    """Calls alternating between two replicas are limited as one budget of 5 per window."""
    clock = FakeClock()
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            connection = redis.asyncio.Redis.from_url(redis_url)
            stack.push_async_callback(connection.aclose)
            limiter = RedisRateLimiter(connection, 60_000, 5, clock=clock)
            clients.append(await _replica(stack, limiter))
        outcomes = [await _outcome(clients[i % 2]) for i in range(8)]
        assert outcomes == ["OK"] * 5 + ["RESOURCE_EXHAUSTED"] * 3
        clock.advance(120)  # two windows later the budget is whole again
        assert await _outcome(clients[0]) == "OK"


async def test_redis_decisions_match_the_in_process_limiter(redis_url: str) -> None:
    """The Lua script and the Python sliding window agree call by call."""
    from meshcore.interceptors.limiters import InProcessRateLimiter

    clock = FakeClock(start=0.0, wall_start=1_700_000_000.0)
    connection = redis.asyncio.Redis.from_url(redis_url)
    try:
        remote = RedisRateLimiter(connection, 1_000, 4, clock=clock)
        local = InProcessRateLimiter(1_000, 4, clock=clock)
        for step in [0.0, 0.1, 0.1, 0.1, 0.1, 0.4, 0.3, 0.2, 0.5, 0.1, 1.2, 0.0]:
            clock.advance(step)
            mine, theirs = await local.hit("k"), await remote.hit("k")
            assert mine.allowed == theirs.allowed
            if not mine.allowed:
                assert theirs.retry_after == pytest.approx(mine.retry_after, abs=0.002)
    finally:
        await connection.aclose()


@pytest.mark.parametrize(("fail_mode", "expected"), [("open", "OK"), ("closed", "UNAVAILABLE")])
async def test_unreachable_redis_follows_the_fail_mode(fail_mode: str, expected: str) -> None:
    """Nothing listening on the Redis port: the configured fail mode decides, and it is counted."""
    registry = CollectorRegistry()
    limiter = RedisRateLimiter.from_url("redis://127.0.0.1:1/0", 60_000, 5)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(limiter.close)
        call = await _replica(stack, limiter, fail_mode=fail_mode, registry=registry)
        assert await _outcome(call) == expected
    outcome = "allowed" if fail_mode == "open" else "refused"
    count = registry.get_sample_value(
        "meshcore_rate_limit_backend_errors_total", {"outcome": outcome}
    )
    assert count == 1.0


async def test_the_chain_closes_the_redis_connections_it_opened_when_the_server_stops(
    redis_url: str,
) -> None:
    """build_server_chain opens a Redis limiter for REDIS_URL; once MeshServer has stopped, its
    connections are gone from Redis's CLIENT LIST (they used to stay until the process died)."""
    from uuid import uuid4

    from meshcore.interceptors.chain import build_server_chain
    from meshcore.server import ServiceRegistration
    from meshcore.settings import ServiceSettings
    from meshcore.testing import serve_in_process

    service = f"close-{uuid4().hex[:8]}"

    class Settings(ServiceSettings):
        service_name: ClassVar[str] = service

    chain = build_server_chain(
        Settings(redis_url=redis_url),
        auth=None,
        metrics_registry=CollectorRegistry(),
        tracer_provider=None,
    )

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    def add(servicer: object, server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            echo, request_deserializer=_identity, response_serializer=_identity
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("t.E", {"C": handler}),)
        )

    observer = redis.asyncio.Redis.from_url(redis_url)

    async def limiter_connections() -> int:
        clients = await observer.client_list()
        return sum(client["name"] == f"meshcore-ratelimit-{service}" for client in clients)

    try:
        async with serve_in_process(
            [ServiceRegistration(object(), add, "t.E")], interceptors=chain
        ) as served:
            assert await served.channel.unary_unary("/t.E/C")(b"x") == b"x"
            assert await limiter_connections() == 1
        assert await limiter_connections() == 0
    finally:
        await observer.aclose()


async def test_a_burst_of_concurrent_hits_shares_a_few_pipelines(redis_url: str) -> None:
    """300 concurrent calls (redis-py's pool refuses its 101st connection at once) each get
    their own decision, exactly 120 are allowed, and at most max_pipelines connections open."""
    from uuid import uuid4

    connection = redis.asyncio.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(connection, 60_000, 120, prefix=f"burst-{uuid4().hex}:")
    try:
        decisions = await asyncio.gather(*(limiter.hit("caller") for _ in range(300)))
        assert sum(decision.allowed for decision in decisions) == 120
        assert sorted(d.remaining for d in decisions if d.allowed) == list(range(120))
        assert all(d.retry_after > 0 for d in decisions if not d.allowed)
        pool = connection.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 4
    finally:
        await limiter.close()


async def test_a_script_redis_forgot_is_loaded_again(redis_url: str) -> None:
    """After a restart (or SCRIPT FLUSH) Redis answers NOSCRIPT: the limiter loads the script
    and sends those hits again. Simulated with a digest Redis never saw, to leave the shared
    server's script cache alone."""
    connection = redis.asyncio.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(connection, 60_000, 5, prefix="noscript-test:")
    try:
        limiter._sha = "0" * 40
        decisions = await asyncio.gather(*(limiter.hit(f"k{index}") for index in range(3)))
        assert all(decision.allowed for decision in decisions)
        assert limiter._sha != "0" * 40
    finally:
        await connection.delete(*(f"noscript-test:k{index}" for index in range(3)))
        await limiter.close()


async def test_a_caller_that_goes_away_leaves_the_others_their_answers(redis_url: str) -> None:
    from uuid import uuid4

    connection = redis.asyncio.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(connection, 60_000, 10, prefix=f"cancel-{uuid4().hex}:")
    try:
        gone = asyncio.ensure_future(limiter.hit("caller"))
        staying = [asyncio.ensure_future(limiter.hit("caller")) for _ in range(3)]
        gone.cancel()
        decisions = await asyncio.gather(*staying)
        assert all(decision.allowed for decision in decisions)
        assert gone.cancelled()
    finally:
        await limiter.close()


async def test_the_service_budget_shares_the_users_connections_but_not_their_keys(
    redis_url: str,
) -> None:
    """``sharing_connections``: its own limit and key space on the same Redis client."""
    from uuid import uuid4

    connection = redis.asyncio.Redis.from_url(redis_url)
    prefix = f"shared-{uuid4().hex}:"
    users = RedisRateLimiter(connection, 60_000, 1, prefix=prefix)
    services = users.sharing_connections(3, prefix=f"{prefix}services:")
    try:
        assert [(await services.hit("service:project")).allowed for _ in range(4)] == [
            True,
            True,
            True,
            False,
        ]
        assert [(await users.hit("service:project")).allowed for _ in range(2)] == [True, False]
        assert (
            await connection.exists(f"{prefix}services:service:project", f"{prefix}service:project")
            == 2
        )
    finally:
        await users.close()


class _CountingRequests:
    """Wraps a limiter's pipeline to count the requests it sends Redis (one per key asked)."""

    def __init__(self, limiter: RedisRateLimiter) -> None:
        self.requests = 0
        self._pipeline = limiter._pipeline
        limiter._pipeline = self  # type: ignore[method-assign]

    async def __call__(self, keys: list[str], wanted: list[int]) -> list[Any]:
        self.requests += len(keys)
        return await self._pipeline(keys, wanted)


async def test_a_busy_caller_costs_a_request_per_lease_not_per_call(redis_url: str) -> None:
    """1000 calls one after the other: leases double from one call, so about ten requests,
    and Redis counted every admitted call."""
    from uuid import uuid4

    connection = redis.asyncio.Redis.from_url(redis_url)
    prefix = f"lease-{uuid4().hex}:"
    # A lease lapses after 30 s here, so a stalled machine cannot make this test flaky.
    limiter = RedisRateLimiter(connection, 60_000, 1_000_000, prefix=prefix, lease_seconds=30)
    counting = _CountingRequests(limiter)
    try:
        decisions = [await limiter.hit("caller") for _ in range(1000)]
        assert all(decision.allowed for decision in decisions)
        assert counting.requests <= 12
        counted = int(await connection.hget(f"{prefix}caller", "c") or 0)
        assert 1000 <= counted <= 2000  # the last lease's unused calls are counted too
        remaining = [decision.remaining for decision in decisions]
        assert remaining == sorted(remaining, reverse=True)
    finally:
        await limiter.close()


async def test_replicas_leasing_one_budget_never_admit_beyond_it(redis_url: str) -> None:
    """Two replicas, bursts of concurrent calls on one key with a budget of 100: never more
    than 100 admitted, and every call Redis counted was admitted or is still in a lease."""
    from uuid import uuid4

    prefix = f"lease-replicas-{uuid4().hex}:"
    connections = [redis.asyncio.Redis.from_url(redis_url) for _ in range(2)]
    replicas = [
        RedisRateLimiter(connection, 60_000, 100, prefix=prefix, lease_seconds=30)
        for connection in connections
    ]
    try:
        admitted = 0
        for burst in (1, 3, 7, 20, 1, 50, 2, 90):
            decisions = await asyncio.gather(
                *(replicas[index % 2].hit("caller") for index in range(burst))
            )
            admitted += sum(decision.allowed for decision in decisions)
        counted = int(await connections[0].hget(f"{prefix}caller", "c") or 0)
        leased = sum(state.left for replica in replicas for state in replica._keys.values())
        assert admitted <= 100
        assert counted == admitted + leased
        assert counted == 100  # the budget was asked for until none was left
    finally:
        for replica in replicas:
            await replica.close()


async def test_the_interceptor_admits_calls_from_the_lease_without_asking_redis(
    redis_url: str,
) -> None:
    """100 calls through a server's chain: a handful of requests to Redis, every call OK."""
    from uuid import uuid4

    connection = redis.asyncio.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(
        connection, 60_000, 1_000_000, prefix=f"lease-chain-{uuid4().hex}:", lease_seconds=30
    )
    counting = _CountingRequests(limiter)
    try:
        async with AsyncExitStack() as stack:
            call = await _replica(stack, limiter)
            outcomes = [await _outcome(call) for _ in range(100)]
        assert outcomes == ["OK"] * 100
        assert counting.requests <= 8
    finally:
        await limiter.close()
