"""retry_with_backoff: full-jitter bounds, what is retried, pushback, deadlines and budgets."""

from __future__ import annotations

import grpc
import pytest
from meshcore.errors import InvalidArgument, ResourceExhausted, Unavailable
from meshcore.resilience import (
    CircuitOpenError,
    RetryBudget,
    RetryPolicy,
    is_retryable,
    pushback_seconds,
    retry_with_backoff,
)
from meshcore.resilience.retry import MIN_RETRY_SECONDS
from meshcore.resilience.status import DO_NOT_RETRY
from meshcore.testing import FakeClock

from .conftest import drive


class RpcFailure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        self._code = code
        self._trailers = trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailers


class RecordingClock(FakeClock):
    """A fake clock that remembers every sleep it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


def flaky(failures: list[BaseException], result: str = "ok"):  # type: ignore[no-untyped-def]
    """An async fn that raises each of ``failures`` once, then returns ``result``."""
    calls = {"n": 0}

    async def fn() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


async def test_retries_unavailable_until_success() -> None:
    """Two UNAVAILABLE failures, then success: three attempts, two jittered waits in bounds."""
    clock = RecordingClock()
    fn = flaky([RpcFailure(grpc.StatusCode.UNAVAILABLE)] * 2)
    result = await drive(clock, retry_with_backoff(fn, 3, 1_000, clock=clock))
    assert result == "ok"
    assert fn.calls["n"] == 3
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 1.0
    assert 0 <= clock.sleeps[1] <= 2.0


async def test_gives_up_after_max_retries_with_the_last_error(clock: FakeClock) -> None:
    """max_retries=2 means three attempts; the callee's own error reaches the caller."""
    failures: list[BaseException] = [Unavailable(f"down {i}") for i in range(5)]
    fn = flaky(failures)
    with pytest.raises(Unavailable, match="down 2"):
        await drive(clock, retry_with_backoff(fn, 2, 10, clock=clock))
    assert fn.calls["n"] == 3


@pytest.mark.parametrize(
    "error",
    [
        RpcFailure(grpc.StatusCode.INVALID_ARGUMENT),
        RpcFailure(grpc.StatusCode.NOT_FOUND),
        RpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED),
        RpcFailure(grpc.StatusCode.INTERNAL),
        RpcFailure(grpc.StatusCode.RESOURCE_EXHAUSTED),
        InvalidArgument("name", "empty"),
        ValueError("a bug"),
    ],
)
async def test_non_retryable_failures_fail_at_once(clock: FakeClock, error: Exception) -> None:
    """Business errors, spent deadlines, internal faults and bugs are never retried."""
    fn = flaky([error])
    with pytest.raises(type(error)):
        await drive(clock, retry_with_backoff(fn, 3, 10, clock=clock))
    assert fn.calls["n"] == 1


async def test_connection_failures_and_server_cancellation_are_retried(clock: FakeClock) -> None:
    """A refused connection, and a call the server cancelled (shutting down), are retried."""
    fn = flaky([ConnectionRefusedError(), RpcFailure(grpc.StatusCode.CANCELLED)])
    assert await drive(clock, retry_with_backoff(fn, 2, 10, clock=clock)) == "ok"
    assert fn.calls["n"] == 3


async def test_server_pushback_replaces_the_computed_wait() -> None:
    """grpc-retry-pushback-ms 1500 makes the client wait exactly 1.5 s."""
    clock = RecordingClock()
    failure = RpcFailure(grpc.StatusCode.UNAVAILABLE, (("grpc-retry-pushback-ms", "1500"),))
    fn = flaky([failure])
    assert await drive(clock, retry_with_backoff(fn, 3, 10, clock=clock)) == "ok"
    assert clock.sleeps == [1.5]


async def test_resource_exhausted_is_retried_only_with_retry_after() -> None:
    """RESOURCE_EXHAUSTED with retry_after=2 waits 2 s and retries; without it, no retry."""
    clock = RecordingClock()
    fn = flaky([ResourceExhausted("slow down", retry_after=2.0)])
    assert await drive(clock, retry_with_backoff(fn, 3, 10, clock=clock)) == "ok"
    assert clock.sleeps == [2.0]
    assert not is_retryable(ResourceExhausted("quota"))
    trailer = RpcFailure(grpc.StatusCode.RESOURCE_EXHAUSTED, (("retry-after", "3"),))
    assert is_retryable(trailer)
    assert pushback_seconds(trailer) == 3.0


async def test_negative_pushback_means_do_not_retry(clock: FakeClock) -> None:
    """gRFC A6: a negative or malformed pushback stops retrying at once."""
    for value in ("-1", "soon"):
        failure = RpcFailure(grpc.StatusCode.UNAVAILABLE, (("grpc-retry-pushback-ms", value),))
        assert pushback_seconds(failure) == DO_NOT_RETRY
        fn = flaky([failure])
        with pytest.raises(RpcFailure):
            await drive(clock, retry_with_backoff(fn, 3, 10, clock=clock))
        assert fn.calls["n"] == 1


async def test_no_retry_waits_past_the_deadline(clock: FakeClock) -> None:
    """A pushback longer than the time left ends the retries with the callee's error."""
    failure = Unavailable("down", retry_after=5.0)
    fn = flaky([failure])
    deadline = clock.monotonic() + 2.0
    with pytest.raises(Unavailable):
        await drive(clock, retry_with_backoff(fn, 3, 10, deadline=deadline, clock=clock))
    assert fn.calls["n"] == 1


async def test_no_retry_starts_with_almost_no_time_left(clock: FakeClock) -> None:
    """A retry that would have under MIN_RETRY_SECONDS left is not made: the callee's error
    comes back, not a DEADLINE_EXCEEDED of the client's own making."""
    failure = Unavailable("down", retry_after=0.01)
    fn = flaky([failure])
    deadline = clock.monotonic() + 0.01 + MIN_RETRY_SECONDS / 2
    with pytest.raises(Unavailable):
        await drive(clock, retry_with_backoff(fn, 3, 10, deadline=deadline, clock=clock))
    assert fn.calls["n"] == 1


async def test_circuit_open_backs_off_normally_instead_of_recovery_time() -> None:
    """A breaker's retry_after (its recovery time) is not server pushback: backoff applies."""
    clock = RecordingClock()
    fn = flaky([CircuitOpenError(retry_after=30.0)])
    assert await drive(clock, retry_with_backoff(fn, 1, 100, clock=clock)) == "ok"
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] <= 0.1


async def test_exhausted_budget_stops_retries(clock: FakeClock) -> None:
    """With no floor and a 10 % ratio, 10 calls earn exactly one retry between them."""
    budget = RetryBudget(ratio=0.1, min_retries_per_second=0, ttl=10_000, clock=clock)
    outcomes = []
    for _ in range(10):
        fn = flaky([Unavailable("down")] * 5)
        try:
            await drive(clock, retry_with_backoff(fn, 3, 1, budget=budget, clock=clock), step=0.001)
            outcomes.append(fn.calls["n"])
        except Unavailable:
            outcomes.append(fn.calls["n"])
    assert sum(n - 1 for n in outcomes) == 1


def test_retry_policy_retries_non_idempotent_methods_only_when_unsent() -> None:
    """Non-idempotent methods retry only a refusal that never left the process."""
    policy = RetryPolicy()
    strict = policy.retry_on_for(idempotent=False)
    assert strict(CircuitOpenError())
    assert not strict(RpcFailure(grpc.StatusCode.UNAVAILABLE))
    assert not strict(ConnectionResetError())
    relaxed = policy.retry_on_for(idempotent=True)
    assert relaxed(RpcFailure(grpc.StatusCode.UNAVAILABLE))
