"""CircuitBreaker: transitions, what counts as a failure, half-open probe limits, concurrency."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from meshcore.errors import InvalidArgument, NotFound, Unavailable
from meshcore.resilience import CircuitBreaker, CircuitOpenError, CircuitState
from meshcore.testing import FakeClock

from tests.support import settle


class Boom(grpc.RpcError):
    """A stand-in for grpc.aio.AioRpcError with a status code."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


async def fail(code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
    raise Boom(code)


async def ok() -> str:
    return "ok"


async def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await breaker.execute(fail)


async def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    """Five callee failures in a row open the circuit; the fourth leaves it closed."""
    breaker = CircuitBreaker(5, 60_000, 10_000, clock=clock)
    await trip(breaker, 4)
    assert breaker.state is CircuitState.CLOSED
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


async def test_open_circuit_rejects_with_seed_message_and_unavailable(clock: FakeClock) -> None:
    """An open circuit raises CircuitOpenError('Circuit breaker is OPEN'), an UNAVAILABLE."""
    breaker = CircuitBreaker(1, 60_000, 10_000, clock=clock)
    await trip(breaker, 1)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    with pytest.raises(CircuitOpenError) as caught:
        await breaker.execute(counted)
    assert str(caught.value) == "Circuit breaker is OPEN"
    assert isinstance(caught.value, Unavailable)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert caught.value.retry_after == pytest.approx(60.0)
    assert calls == 0


async def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    """Failures separated by a success never add up to a trip."""
    breaker = CircuitBreaker(3, 60_000, 10_000, clock=clock)
    for _ in range(5):
        await trip(breaker, 2)
        await breaker.execute(ok)
    assert breaker.state is CircuitState.CLOSED


async def test_failures_older_than_monitoring_period_do_not_count(clock: FakeClock) -> None:
    """Two failures, a quiet 11 s, two more: with threshold 3 the circuit stays closed."""
    breaker = CircuitBreaker(3, 60_000, 10_000, clock=clock)
    await trip(breaker, 2)
    clock.advance(11)
    await trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    ],
)
async def test_callee_failure_codes_count(clock: FakeClock, code: grpc.StatusCode) -> None:
    """Each status that means the callee is unwell counts towards opening."""
    breaker = CircuitBreaker(2, 60_000, 10_000, clock=clock)
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.execute(lambda: fail(code))
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
async def test_business_errors_never_count(clock: FakeClock, code: grpc.StatusCode) -> None:
    """Business answers prove the callee is alive: twenty of them leave the circuit closed."""
    breaker = CircuitBreaker(2, 60_000, 10_000, clock=clock)
    for _ in range(20):
        with pytest.raises(Boom):
            await breaker.execute(lambda: fail(code))
    assert breaker.state is CircuitState.CLOSED


async def test_meshcore_errors_and_connection_failures_are_judged_alike(
    clock: FakeClock,
) -> None:
    """NotFound/InvalidArgument do not count; Unavailable and ConnectionRefusedError do."""
    breaker = CircuitBreaker(2, 60_000, 10_000, clock=clock)

    async def raise_(error: Exception) -> None:
        raise error

    for error in (NotFound("user", "u1"), InvalidArgument("name", "empty")) * 3:
        with pytest.raises(type(error)):
            await breaker.execute(lambda error=error: raise_(error))
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(Unavailable):
        await breaker.execute(lambda: raise_(Unavailable("down")))
    with pytest.raises(ConnectionRefusedError):
        await breaker.execute(lambda: raise_(ConnectionRefusedError()))
    assert breaker.state is CircuitState.OPEN


async def test_half_open_after_recovery_timeout_then_closes_on_probe_success(
    clock: FakeClock,
) -> None:
    """After the recovery timeout one probe is admitted; its success closes the circuit."""
    breaker = CircuitBreaker(1, 60_000, 10_000, clock=clock)
    await trip(breaker, 1)
    clock.advance(59.9)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.execute(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_failed_probe_reopens_for_a_full_recovery_timeout(clock: FakeClock) -> None:
    """A failing probe sends the circuit back to open, timed from the probe's failure."""
    breaker = CircuitBreaker(1, 60_000, 10_000, clock=clock)
    await trip(breaker, 1)
    clock.advance(60)
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    clock.advance(59)
    with pytest.raises(CircuitOpenError):
        await breaker.execute(ok)
    clock.advance(1)
    assert breaker.state is CircuitState.HALF_OPEN


async def test_half_open_admits_only_the_probe_limit_concurrently(clock: FakeClock) -> None:
    """With half_open_max_calls=2, of ten concurrent callers two probe and eight are refused."""
    breaker = CircuitBreaker(1, 1_000, 10_000, half_open_max_calls=2, clock=clock)
    await trip(breaker, 1)
    clock.advance(1)
    release = asyncio.Event()
    admitted = 0

    async def slow_probe() -> str:
        nonlocal admitted
        admitted += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.ensure_future(breaker.execute(slow_probe)) for _ in range(10)]
    await settle()
    refused = [t for t in tasks if t.done() and isinstance(t.exception(), CircuitOpenError)]
    assert admitted == 2
    assert len(refused) == 8
    assert breaker.state is CircuitState.HALF_OPEN
    release.set()
    await settle()
    assert breaker.state is CircuitState.CLOSED


async def test_half_open_needs_every_admitted_probe_to_succeed(clock: FakeClock) -> None:
    """With two probe slots, one success is not enough; the second probe's failure reopens."""
    breaker = CircuitBreaker(1, 1_000, 10_000, half_open_max_calls=2, clock=clock)
    await trip(breaker, 1)
    clock.advance(1)
    assert await breaker.execute(ok) == "ok"
    assert breaker.state is CircuitState.HALF_OPEN
    await trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


async def test_cancelled_probe_gives_its_slot_back(clock: FakeClock) -> None:
    """A probe cancelled mid-flight frees its slot so another caller may probe."""
    breaker = CircuitBreaker(1, 1_000, 10_000, clock=clock)
    await trip(breaker, 1)
    clock.advance(1)
    probe = asyncio.ensure_future(breaker.execute(lambda: asyncio.Event().wait()))
    await settle()
    with pytest.raises(CircuitOpenError):
        await breaker.execute(ok)
    probe.cancel()
    await settle()
    assert await breaker.execute(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_late_results_from_before_the_trip_are_ignored(clock: FakeClock) -> None:
    """A slow call started while closed and succeeding after the trip cannot close it."""
    breaker = CircuitBreaker(2, 60_000, 10_000, clock=clock)
    release = asyncio.Event()

    async def slow_ok() -> str:
        await release.wait()
        return "ok"

    slow = asyncio.ensure_future(breaker.execute(slow_ok))
    await settle()
    await trip(breaker, 2)
    release.set()
    assert await slow == "ok"
    assert breaker.state is CircuitState.OPEN


async def test_many_concurrent_failures_open_exactly_once(clock: FakeClock) -> None:
    """A hundred concurrent failing callers trip the breaker once and later callers are refused."""
    changes: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(
        5, 60_000, 10_000, clock=clock, on_state_change=lambda _b, a, b: changes.append((a, b))
    )

    async def fail_soon() -> None:
        await asyncio.sleep(0)
        raise Boom(grpc.StatusCode.UNAVAILABLE)

    results = await asyncio.gather(
        *(breaker.execute(fail_soon) for _ in range(100)), return_exceptions=True
    )
    assert all(isinstance(r, Boom) for r in results)
    assert changes == [(CircuitState.CLOSED, CircuitState.OPEN)]
    with pytest.raises(CircuitOpenError):
        await breaker.execute(ok)


async def test_errors_that_are_no_status_release_without_verdict(clock: FakeClock) -> None:
    """A bug in the caller's own code (ValueError) neither trips nor heals a probe."""
    breaker = CircuitBreaker(1, 1_000, 10_000, clock=clock)

    async def buggy() -> None:
        raise ValueError("caller bug")

    for _ in range(3):
        with pytest.raises(ValueError, match="caller bug"):
            await breaker.execute(buggy)
    assert breaker.state is CircuitState.CLOSED
    await trip(breaker, 1)
    clock.advance(1)
    with pytest.raises(ValueError, match="caller bug"):
        await breaker.execute(buggy)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allows_request()
