"""The per-call path on a fake transport: accounting, latency penalty, retries, deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from meshcore.client_manager import GrpcClientManager, UnaryMethod
from meshcore.context import call_scope
from meshcore.errors import Unavailable
from meshcore.resilience import RetryBudget, RetryPolicy
from meshcore.resilience.breaker import CircuitOpenError
from meshcore.testing import FakeClock

from tests.support import settle

from .conftest import drive

Behaviour = Callable[[str, Any, float | None], Awaitable[Any]]


class FakeConnection:
    """Stands in for a channel: every call goes to ``behaviour(address, request, timeout)``."""

    def __init__(self, address: str, behaviour: Behaviour, log: list[tuple[str, float]]) -> None:
        self.address = address
        self._behaviour = behaviour
        self._log = log

    def unary_unary(self, path: str, serializer: Any, deserializer: Any) -> Any:
        async def rpc(
            request: Any,
            timeout: float | None = None,  # noqa: ASYNC109 - grpc's own keyword
            metadata: Any = None,
        ) -> Any:
            self._log.append((self.address, timeout if timeout is not None else -1.0))
            return await self._behaviour(self.address, request, timeout)

        return rpc


def make_method(
    clock: FakeClock,
    behaviour: Behaviour,
    *,
    strategy: str = "round-robin",
    idempotent: bool = True,
    budget: RetryBudget | None = None,
    addresses: str = "10.0.0.1:1,10.0.0.2:1",
) -> tuple[GrpcClientManager, UnaryMethod, list[tuple[str, float]]]:
    log: list[tuple[str, float]] = []
    manager = GrpcClientManager(
        {"echo": addresses},
        interceptors=(),
        strategy=strategy,
        retry=RetryPolicy(max_retries=2, base_delay=10, max_delay=40),
        retry_budget=budget,
        health_checks=False,
        timeout=1_000,
        clock=clock,
    )
    manager.pool.connection = lambda address: FakeConnection(address, behaviour, log)  # type: ignore[method-assign,assignment,return-value]
    method = manager.service("echo").unary("/e.E/M", bytes, bytes, idempotent=idempotent)
    return manager, method, log


class Unavail(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


async def test_in_flight_counts_rise_during_calls_and_return_to_zero(clock: FakeClock) -> None:
    """Each call holds one in-flight slot on its replica until it ends, success or failure."""
    release = asyncio.Event()

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        await release.wait()
        if request == b"fail":
            raise Unavail()
        return b"ok"

    manager, method, _ = make_method(clock, behaviour, idempotent=False)
    calls = [asyncio.ensure_future(method(b"ok")) for _ in range(3)]
    calls.append(asyncio.ensure_future(method(b"fail")))
    await settle()
    instances = manager.discovery.get_instances("echo")
    assert sorted(i.load.in_flight for i in instances) == [2, 2]
    release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[:3] == [b"ok"] * 3
    assert isinstance(results[3], Unavail)
    assert [i.load.in_flight for i in instances] == [0, 0]


async def test_a_fast_failing_replica_does_not_attract_p2c_traffic(clock: FakeClock) -> None:
    """Instant UNAVAILABLEs count as at least 1 s of latency, so p2c steers to the healthy one."""

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        if address == "10.0.0.2:1":
            raise Unavail()
        clock.advance(0.01)
        return b"ok"

    _, method, log = make_method(clock, behaviour, strategy="p2c-ewma")
    for _ in range(200):
        assert await drive(clock, method(b"x"), step=0.005) == b"ok"
    to_bad = sum(1 for address, _ in log if address == "10.0.0.2:1")
    assert to_bad <= 3  # tried once, then penalised (its breaker needs 5 failures to open)


async def test_idempotent_call_retries_on_the_other_replica(clock: FakeClock) -> None:
    """UNAVAILABLE from one replica is retried (after a jittered wait) on the next one."""

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        if address == "10.0.0.1:1":
            raise Unavail()
        return address.encode()

    _, method, log = make_method(clock, behaviour)
    assert await drive(clock, method(b"x"), step=0.001) == b"10.0.0.2:1"
    assert [address for address, _ in log] == ["10.0.0.1:1", "10.0.0.2:1"]


async def test_an_empty_budget_stops_retries(clock: FakeClock) -> None:
    """With no retry budget left the first failure reaches the caller unchanged."""

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        raise Unavail()

    budget = RetryBudget(ratio=0.0, min_retries_per_second=0, clock=clock)
    _, method, log = make_method(clock, behaviour, budget=budget)
    with pytest.raises(Unavail):
        await drive(clock, method(b"x"), step=0.001)
    assert len(log) == 1


async def test_each_attempt_gets_only_the_time_left(clock: FakeClock) -> None:
    """The second attempt's timeout is the call's deadline minus what the first one used."""

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        if address == "10.0.0.1:1":
            clock.advance(0.3)
            raise Unavail()
        return b"ok"

    _, method, log = make_method(clock, behaviour)
    assert await drive(clock, method(b"x", timeout_ms=1_000), step=0.001) == b"ok"
    first, second = (timeout for _, timeout in log)
    assert first == pytest.approx(1.0)
    assert 0.6 < second < 0.7


async def test_inbound_deadline_caps_the_outgoing_timeout(clock: FakeClock) -> None:
    """Inside a call with 50 ms left, a downstream call gets at most 50 ms, not its 1 s default."""

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        return b"ok"

    _, method, log = make_method(clock, behaviour)
    with call_scope(deadline=clock.monotonic() + 0.05):
        await method(b"x")
    assert log[0][1] == pytest.approx(0.05)


async def test_no_healthy_replica_is_unavailable_naming_the_service(clock: FakeClock) -> None:
    """With every replica ejected the call fails with UNAVAILABLE naming the service."""

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        return b"ok"

    manager, method, log = make_method(clock, behaviour, idempotent=False)
    for instance in manager.discovery.get_instances("echo"):
        for _ in range(3):
            manager.discovery.record_check(instance, False)
    with pytest.raises(Unavailable, match="'echo'"):
        await method(b"x")
    assert log == []


async def test_a_single_replica_with_an_open_breaker_is_refused_without_sending(
    clock: FakeClock,
) -> None:
    """One replica skips balancing, not the breaker: once open, calls fail fast and unsent."""

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        raise Unavail()

    manager, method, log = make_method(clock, behaviour, idempotent=False, addresses="10.0.0.1:1")
    for _ in range(5):  # the breaker's failure threshold
        with pytest.raises(Unavail):
            await method(b"x")
    assert len(log) == 5
    with pytest.raises(CircuitOpenError):  # retried as unsent, refused again each time
        await drive(clock, method(b"x"), step=0.001)
    assert len(log) == 5
    (instance,) = manager.discovery.get_instances("echo")
    assert instance.load.in_flight == 0


async def test_a_single_replica_is_retried_after_an_unavailable(clock: FakeClock) -> None:
    """The retry loop entered from the first attempt sends the call again to the one replica."""
    failures = [Unavail()]

    async def behaviour(address: str, request: Any, timeout_s: float | None) -> bytes:
        if failures:
            raise failures.pop()
        return b"ok"

    _, method, log = make_method(clock, behaviour, addresses="10.0.0.1:1")
    assert await drive(clock, method(b"x"), step=0.001) == b"ok"
    assert [address for address, _ in log] == ["10.0.0.1:1", "10.0.0.1:1"]
