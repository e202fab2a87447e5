"""Two real replicas behind one client manager: failover, ejection, rejoin, breakers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from meshcore.client_manager import BreakerSettings, GrpcClientManager, create_grpc_client_manager
from meshcore.discovery import ServiceDiscovery
from meshcore.errors import Unavailable
from meshcore.resilience import CircuitOpenError, CircuitState, RetryPolicy

from tests.replicas import COLLECT, CREATE, ECHO, SERVICE, Replica, identity


def manager_for(
    replicas: list[Replica], options: tuple[tuple[str, int], ...], **kwargs: object
) -> GrpcClientManager:
    discovery = ServiceDiscovery(
        health_check_interval=100, unhealthy_threshold=2, healthy_threshold=2, timeout=300
    )
    defaults: dict[str, object] = {
        "discovery": discovery,
        "channel_options": options,
        "interceptors": (),
        "strategy": "round-robin",
        "retry": RetryPolicy(max_retries=3, base_delay=5, max_delay=20),
        "timeout": 2_000,
    }
    defaults.update(kwargs)
    return create_grpc_client_manager(
        {"echo": {"endpoints": [r.address for r in replicas], "health_service": SERVICE}},
        **defaults,
    )


async def wait_until(predicate: Callable[[], bool], limit: float) -> float:
    """Poll ``predicate`` (real time: these replicas are real); return the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > limit:
            raise AssertionError(f"condition not met within {limit} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_replica_stopped_mid_load_is_ejected_then_rejoins(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """Under steady load one replica stops: every call still succeeds, the dead replica is
    ejected within the configured checks, and after a restart it rejoins and serves again."""
    r1, r2 = replicas
    manager = manager_for(replicas, fast_reconnect)
    echo = manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
    failures: list[BaseException] = []
    successes = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal successes
        while not stop.is_set():
            try:
                reply = await echo(b"ping")
                assert reply.endswith(b":ping")
                successes += 1
            except Exception as error:
                failures.append(error)
            await asyncio.sleep(0.002)

    async with manager:
        workers = [asyncio.ensure_future(load()) for _ in range(8)]
        await wait_until(lambda: r1.calls > 20 and r2.calls > 20, 5)
        await r2.stop(grace=0.1)
        instance_2 = manager.discovery.get_instances("echo")[1]
        # Ejection: 2 failed checks at 100 ms intervals (+ one interval of phase, + timeouts).
        ejected_after = await wait_until(lambda: not instance_2.healthy, 2.0)
        calls_at_ejection = successes
        await wait_until(lambda: successes > calls_at_ejection + 100, 5)
        await r2.start()
        calls_before_rejoin = r2.calls
        rejoined_after = await wait_until(lambda: instance_2.healthy, 3.0)
        await wait_until(lambda: r2.calls > calls_before_rejoin + 20, 5)
        stop.set()
        await asyncio.gather(*workers)

    assert failures == []
    assert successes > 300
    assert ejected_after < 1.0
    assert rejoined_after < 2.0
    assert manager.pool.addresses() == []


async def test_breaker_ejects_a_failing_replica_while_the_other_serves(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """A replica answering UNAVAILABLE to calls (health still SERVING) is cut off by its own
    breaker after 3 failures; calls keep succeeding on the other replica."""
    r1, r2 = replicas
    r2.fail_with = grpc.StatusCode.UNAVAILABLE
    manager = manager_for(
        replicas, fast_reconnect, breaker=BreakerSettings(failure_threshold=3), health_checks=False
    )
    echo = manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
    async with manager:
        for _ in range(50):
            assert (await echo(b"x")).startswith(b"r1:")
        breaker = manager.breaker_for(manager.discovery.get_instances("echo")[1])
        assert breaker.state is CircuitState.OPEN
    assert r2.calls == 3
    assert r1.calls == 50


async def test_a_passing_health_check_closes_the_breaker_of_a_quickly_restarted_replica(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """A replica restarted faster than the checks take to eject it never flips to unhealthy;
    its breaker, opened by the calls that failed meanwhile, closes at the first health check
    it passes (as Envoy un-ejects a host on a passing active check), not after the minute of
    recovery time."""
    only = replicas[:1]
    discovery = ServiceDiscovery(
        health_check_interval=100, unhealthy_threshold=1_000, healthy_threshold=1, timeout=300
    )
    manager = manager_for(
        only,
        fast_reconnect,
        discovery=discovery,
        retry=RetryPolicy(max_retries=0),
        breaker=BreakerSettings(failure_threshold=2, recovery_timeout=60_000),
    )
    echo = manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
    async with manager:
        assert (await echo(b"before")).startswith(b"r1:")
        instance = discovery.get_instances("echo")[0]
        breaker = manager.breaker_for(instance)
        await only[0].stop(grace=0)
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await echo(b"refused")
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            await echo(b"held back")
        await only[0].start()
        closed_after = await wait_until(lambda: breaker.state is CircuitState.CLOSED, 5.0)
        assert (await echo(b"after")).startswith(b"r1:")
        assert instance.healthy  # it never left: the breaker alone kept calls away

    assert closed_after < 5.0


async def test_non_idempotent_calls_are_not_retried_after_sending(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """A non-idempotent call that reached a replica and got UNAVAILABLE is not sent again."""
    for replica in replicas:
        replica.fail_with = grpc.StatusCode.UNAVAILABLE
    manager = manager_for(replicas, fast_reconnect, health_checks=False)
    create = manager.service("echo").unary(CREATE, identity, identity, idempotent=False)
    echo = manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
    async with manager:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(b"x")
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert sum(r.calls for r in replicas) == 1
        with pytest.raises(grpc.aio.AioRpcError):
            await echo(b"x")
        assert sum(r.calls for r in replicas) == 1 + 4  # one attempt and three retries


async def test_business_errors_are_neither_retried_nor_held_against_the_replica(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """NOT_FOUND reaches the caller after one attempt and every breaker stays closed."""
    for replica in replicas:
        replica.fail_with = grpc.StatusCode.NOT_FOUND
    manager = manager_for(replicas, fast_reconnect, health_checks=False)
    echo = manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
    async with manager:
        for _ in range(20):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await echo(b"x")
            assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        states = {manager.breaker_for(i).state for i in manager.discovery.get_instances("echo")}
    assert sum(r.calls for r in replicas) == 20
    assert states == {CircuitState.CLOSED}


async def test_every_breaker_open_fails_fast_with_circuit_open(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """With both replicas' circuits open the call fails without touching the network."""
    for replica in replicas:
        replica.fail_with = grpc.StatusCode.INTERNAL
    manager = manager_for(
        replicas,
        fast_reconnect,
        health_checks=False,
        breaker=BreakerSettings(failure_threshold=1, recovery_timeout=60_000),
    )
    echo = manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
    async with manager:
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await echo(b"x")
        with pytest.raises(CircuitOpenError) as caught:
            await echo(b"x")
    assert isinstance(caught.value, Unavailable)
    assert sum(r.calls for r in replicas) == 2


async def test_deadline_and_interceptor_metadata_reach_the_server(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """The manager's client interceptors run on every call and the deadline travels."""

    class Tagging(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
            metadata = grpc.aio.Metadata(*(details.metadata or ()), ("x-tag", "mesh"))
            return await continuation(details._replace(metadata=metadata), request)

    manager = manager_for(replicas, fast_reconnect, interceptors=[Tagging()], health_checks=False)
    echo = manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
    async with manager:
        await echo(b"x", timeout_ms=1_500, metadata=(("x-extra", "1"),))
    replica = replicas[0] if replicas[0].calls else replicas[1]
    assert replica.seen_metadata[0]["x-tag"] == "mesh"
    assert replica.seen_metadata[0]["x-extra"] == "1"
    remaining = replica.seen_timeouts[0]
    # gRPC rounds the encoded timeout up a little, so allow a few milliseconds over.
    assert remaining is not None
    assert 1.0 < remaining <= 1.52


async def test_istio_mode_sends_once_and_keeps_the_breaker(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """MESH_MODE=istio: no client retries (the sidecar retries), but the breaker still counts."""
    r1, _ = replicas
    r1.fail_with = grpc.StatusCode.UNAVAILABLE
    manager = create_grpc_client_manager(
        {"echo": r1.address},
        mode="istio",
        channel_options=fast_reconnect,
        interceptors=(),
        breaker=BreakerSettings(failure_threshold=2),
    )
    echo = manager.service("echo").unary(ECHO, identity, identity, idempotent=True)
    async with manager:
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await echo(b"x")
        with pytest.raises(CircuitOpenError):
            await echo(b"x")
    assert r1.calls == 2
    assert manager.retry is None


async def test_client_stream_is_sent_once_and_counted_by_the_breaker(
    replicas: list[Replica], fast_reconnect: tuple[tuple[str, int], ...]
) -> None:
    """A client-streaming call delivers every message; a failed stream is never replayed."""
    r1, r2 = replicas
    manager = manager_for(replicas, fast_reconnect, health_checks=False)
    collect = manager.service("echo").stream_unary(COLLECT, identity, identity)

    async def messages(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    async with manager:
        reply = await collect(messages(b"a", b"b", b"c"))
        assert reply.split(b":", 1)[1] == b"a+b+c"
        for replica in replicas:
            replica.fail_with = grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await collect(messages(b"x"))
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        instances = manager.discovery.get_instances("echo")
        assert sum(manager.breaker_for(i).consecutive_failures for i in instances) == 1
        assert all(i.load.in_flight == 0 for i in instances)
    assert r1.calls + r2.calls == 2
