"""ServiceTokenSource: the service's own token, fetched from its issuer and renewed in time."""

from __future__ import annotations

import asyncio

import pytest
from meshcore.service_token import IssuedServiceToken, ServiceTokenSource
from meshcore.testing import FakeClock


class Issuer:
    """Hands out numbered tokens living ``lifetime`` seconds; fails while ``down`` is set."""

    def __init__(self, clock: FakeClock, lifetime: float = 300.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.issued = 0
        self.down = False
        self.asked = asyncio.Event()

    async def fetch(self) -> IssuedServiceToken:
        self.asked.set()
        if self.down:
            raise ConnectionError("issuer unreachable")
        self.issued += 1
        return IssuedServiceToken(f"token-{self.issued}", self.clock.time() + self.lifetime)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_no_token_before_the_first_fetch_then_the_fetched_one() -> None:
    """Calls made before the issuer answered carry no token (the peer says UNAUTHENTICATED)."""
    clock = FakeClock()
    issuer = Issuer(clock)
    source = ServiceTokenSource(issuer.fetch, clock=clock)
    assert source() is None
    source.start()
    async with asyncio.timeout(5):
        await source.wait_ready()
    assert source() == "token-1"
    await source.stop()


async def test_the_token_is_renewed_at_80_percent_of_its_life_not_per_call() -> None:
    """One fetch per 80 % of the lifetime, however many calls ask."""
    clock = FakeClock()
    issuer = Issuer(clock, lifetime=300)
    source = ServiceTokenSource(issuer.fetch, clock=clock)
    source.start()
    async with asyncio.timeout(5):
        await source.wait_ready()
    for _ in range(100):
        assert source() == "token-1"
    clock.advance(239)
    await _settle()
    assert issuer.issued == 1
    clock.advance(1)
    await _settle()
    assert issuer.issued == 2
    assert source() == "token-2"
    await source.stop()


async def test_an_unreachable_issuer_is_retried_with_backoff_and_the_old_token_kept() -> None:
    """While the issuer is down the current token keeps being sent until it expires."""
    clock = FakeClock()
    issuer = Issuer(clock, lifetime=100)
    source = ServiceTokenSource(
        issuer.fetch, first_retry_seconds=1, max_retry_seconds=4, clock=clock
    )
    source.start()
    async with asyncio.timeout(5):
        await source.wait_ready()
    issuer.down = True
    clock.advance(80)  # renewal due: fails
    await _settle()
    assert source() == "token-1"
    for step in (1, 2, 4, 4):  # capped exponential backoff
        issuer.asked.clear()
        clock.advance(step)
        await _settle()
        assert issuer.asked.is_set()
    clock.advance(20)  # past the token's expiry: nothing valid to send
    await _settle()
    assert source() is None
    issuer.down = False
    clock.advance(4)
    await _settle()
    assert source() == "token-2"
    await source.stop()


async def test_refresh_fetches_at_once_and_reports_failures() -> None:
    clock = FakeClock()
    issuer = Issuer(clock)
    source = ServiceTokenSource(issuer.fetch, clock=clock)
    assert (await source.refresh()).token == "token-1"
    issuer.down = True
    with pytest.raises(ConnectionError):
        await source.refresh()
    assert source() == "token-1"


def test_renew_fraction_must_leave_time_to_renew() -> None:
    with pytest.raises(ValueError, match="renew_fraction"):
        ServiceTokenSource(Issuer(FakeClock()).fetch, renew_fraction=1.0)
