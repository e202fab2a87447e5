"""Rate limiting: sliding windows on a fake clock, RetryInfo on refusal, explicit fail modes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from meshcore.interceptors import AuthInterceptor, RateLimitInterceptor
from meshcore.interceptors.limiters import Decision, InProcessRateLimiter, sliding_window_decision
from meshcore.status_details import StatusDetails
from meshcore.testing import FakeClock
from prometheus_client import CollectorRegistry

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    SERVICE_SECRET,
    USER_SECRET,
    EchoFactory,
    service_token,
    settle,
    user_token,
)


async def test_a_window_admits_max_requests_then_refuses() -> None:
    """max_requests calls pass in one window; the next is refused with a retry delay."""
    clock = FakeClock(start=0.0)
    limiter = InProcessRateLimiter(1_000, 3, clock=clock)
    assert [(await limiter.hit("k")).allowed for _ in range(4)] == [True, True, True, False]
    refused = await limiter.hit("k")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(1.0 + (1 - 2 / 3))


async def test_the_window_slides_instead_of_resetting() -> None:
    """Half a window later, half of the previous window's calls still count."""
    clock = FakeClock(start=0.0)
    limiter = InProcessRateLimiter(1_000, 4, clock=clock)
    for _ in range(4):
        assert (await limiter.hit("k")).allowed
    clock.advance(1.5)  # 4 * 0.5 = 2 still count: two more fit, the third does not
    assert [(await limiter.hit("k")).allowed for _ in range(3)] == [True, True, False]
    clock.advance(2.0)  # two whole windows later nothing counts
    assert all([(await limiter.hit("k")).allowed for _ in range(4)])


async def test_keys_are_limited_independently() -> None:
    """One caller exhausting its budget does not limit another."""
    limiter = InProcessRateLimiter(1_000, 1, clock=FakeClock())
    assert (await limiter.hit("a")).allowed
    assert not (await limiter.hit("a")).allowed
    assert (await limiter.hit("b")).allowed


def test_refusal_decides_exactly_as_hit_now_does() -> None:
    """The interceptor's fast check gives hit_now's answers, near the limit and across windows.

    Two limiters on one fake clock take the same calls; one is asked through ``refusal``, the
    other through ``hit_now``. A fixed pseudo-random schedule drives both keys over and under
    their limit many times.
    """
    import random

    clock = FakeClock(start=0.0)
    fast = InProcessRateLimiter(1_000, 5, clock=clock)
    exact = InProcessRateLimiter(1_000, 5, clock=clock)
    steps = random.Random(7)
    refused = allowed = 0
    for _ in range(2_000):
        clock.advance(steps.choice((0.0, 0.0, 0.01, 0.05, 0.2, 0.7)))
        key = steps.choice("ab")
        retry_after = fast.refusal(key)
        decision = exact.hit_now(key)
        assert (retry_after is None) == decision.allowed
        if retry_after is None:
            allowed += 1
        else:
            refused += 1
            assert retry_after == pytest.approx(decision.retry_after)
    # both branches, many times
    assert allowed > 200
    assert refused > 200


def test_retry_after_is_when_one_more_call_fits() -> None:
    """After waiting retry_after, the same counts admit exactly one more call."""
    decision = sliding_window_decision(previous=10, current=3, elapsed=0.2, window=1.0, limit=10)
    assert not decision.allowed
    later = sliding_window_decision(
        previous=10, current=3, elapsed=0.2 + decision.retry_after + 1e-9, window=1.0, limit=10
    )
    assert later.allowed


async def _one(item: bytes) -> AsyncIterator[bytes]:
    yield item


async def test_refused_calls_carry_retry_info_in_every_shape(echo: EchoFactory) -> None:
    """Over the limit: RESOURCE_EXHAUSTED with RetryInfo and retry-after, all four shapes."""
    clock = FakeClock()
    limiter = RateLimitInterceptor(60_000, 4, clock=clock, registry=CollectorRegistry())
    client = await echo([limiter])
    await client.unary(b"a")
    [r async for r in client.server_stream(b"b")]
    await client.client_stream(_one(b"c"))
    [r async for r in client.bidi(_one(b"d"))]
    errors = []
    for call in (lambda: client.unary(b"a"), lambda: client.client_stream(_one(b"c"))):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call()
        errors.append(raised.value)
    for stream in (lambda: client.server_stream(b"b"), lambda: client.bidi(_one(b"d"))):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            [r async for r in stream()]
        errors.append(raised.value)
    for error in errors:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(dict(error.trailing_metadata())["retry-after"]) >= 1
        details = StatusDetails.of(error)
        assert details.reason == "RATE_LIMITED"
        assert details.retry_after is not None
        assert details.retry_after > 0


async def test_authenticated_callers_get_their_own_budget(echo: EchoFactory) -> None:
    """The default key is the principal, so one user's calls do not spend another's."""
    import time

    auth = AuthInterceptor(jwt_secret=USER_SECRET, issuer="zoptal-auth", audience="zoptal")
    limiter = RateLimitInterceptor(60_000, 1, registry=CollectorRegistry())
    client = await echo([auth, limiter])

    def bearer(subject: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {user_token(time.time(), sub=subject)}"),)

    await client.unary(b"x", metadata=bearer("alice"))
    await client.unary(b"x", metadata=bearer("bob"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x", metadata=bearer("alice"))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_platform_service_gets_the_service_budget_not_a_users(
    echo: EchoFactory,
) -> None:
    """A service calls for all its users: it spends ``service_max_requests``, users spend
    ``max_requests``, each under its own key (a user named like the service is not it)."""
    import time

    auth = AuthInterceptor(
        jwt_secret=USER_SECRET,
        service_token_secret=SERVICE_SECRET,
        issuer="zoptal-auth",
        audience="zoptal",
    )
    limiter = RateLimitInterceptor(
        60_000, 2, service_max_requests=5, clock=FakeClock(), registry=CollectorRegistry()
    )
    client = await echo([auth, limiter])
    service = (("x-service-token", service_token(time.time())),)
    user = (("authorization", f"Bearer {user_token(time.time(), sub='billing')}"),)
    for _ in range(5):
        await client.unary(b"x", metadata=service)
    for _ in range(2):
        await client.unary(b"x", metadata=user)
    for metadata in (service, user):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.unary(b"x", metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_without_a_service_budget_services_share_the_users_limit_rules(
    echo: EchoFactory,
) -> None:
    """No ``service_max_requests``: a service is limited like any caller (the seed's rule)."""
    import time

    auth = AuthInterceptor(service_token_secret=SERVICE_SECRET)
    limiter = RateLimitInterceptor(60_000, 1, clock=FakeClock(), registry=CollectorRegistry())
    client = await echo([auth, limiter])
    service = (("x-service-token", service_token(time.time())),)
    await client.unary(b"x", metadata=service)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x", metadata=service)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


class BrokenLimiter:
    async def hit(self, key: str) -> Decision:
        raise ConnectionError("redis is down")


@pytest.mark.parametrize(("fail_mode", "expected"), [("open", None), ("closed", "UNAVAILABLE")])
async def test_a_failing_backend_follows_the_configured_fail_mode(
    echo: EchoFactory, fail_mode: str, expected: str | None
) -> None:
    """Backend down: fail-open lets the call through, fail-closed refuses; both are counted."""
    registry = CollectorRegistry()
    interceptor = RateLimitInterceptor(
        limiter=BrokenLimiter(),
        fail_mode=fail_mode,
        registry=registry,  # type: ignore[arg-type]
    )
    client = await echo([interceptor])
    if expected is None:
        assert (await client.unary(b"x")).startswith(b"x|")
    else:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.unary(b"x")
        assert raised.value.code().name == expected
    await settle()
    outcome = "allowed" if fail_mode == "open" else "refused"
    value = registry.get_sample_value(
        "meshcore_rate_limit_backend_errors_total", {"outcome": outcome}
    )
    assert value == 1.0
