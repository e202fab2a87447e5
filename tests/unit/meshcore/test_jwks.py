"""RemoteJwks: cached keys, refetch on unknown kid at most once per interval, outages."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from meshcore.errors import Unavailable
from meshcore.jwks import RemoteJwks
from meshcore.jwt import InvalidToken, SigningKey
from meshcore.testing import FakeClock


class FakeJwksEndpoint:
    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.requests = 0
        self.down = False

    def __call__(self, url: str, timeout: float) -> Sequence[Mapping[str, Any]]:
        self.requests += 1
        if self.down:
            raise OSError("connection refused")
        return [key.public_jwk() for key in self.keys]


async def test_keys_are_fetched_once_and_cached() -> None:
    """Many lookups of a known kid cost one fetch."""
    key = SigningKey.generate()
    endpoint = FakeJwksEndpoint(key)
    jwks = RemoteJwks("http://auth/jwks", clock=FakeClock(), fetcher=endpoint)
    for _ in range(5):
        assert await jwks.key_for(key.kid, "ES256") is not None
    assert endpoint.requests == 1


async def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    """A rotated-in key is found by one refetch; a spray of unknown kids cannot force more."""
    clock = FakeClock()
    old, new = SigningKey.generate(), SigningKey.generate()
    endpoint = FakeJwksEndpoint(old)
    jwks = RemoteJwks("http://auth/jwks", clock=clock, fetcher=endpoint, min_refetch_interval=30)
    await jwks.key_for(old.kid, "ES256")
    clock.advance(31)
    endpoint.keys.append(new)
    assert await jwks.key_for(new.kid, "ES256") is not None
    assert endpoint.requests == 2
    for index in range(10):
        with pytest.raises(InvalidToken):
            await jwks.key_for(f"random-{index}", "ES256")
    assert endpoint.requests == 2


async def test_an_outage_keeps_the_keys_already_known() -> None:
    """A failed refresh keeps serving cached keys; no keys at all means Unavailable."""
    clock = FakeClock()
    key = SigningKey.generate()
    endpoint = FakeJwksEndpoint(key)
    jwks = RemoteJwks("http://auth/jwks", clock=clock, fetcher=endpoint, refresh_interval=60)
    await jwks.key_for(key.kid, "ES256")
    endpoint.down = True
    clock.advance(120)
    assert await jwks.key_for(key.kid, "ES256") is not None
    cold = RemoteJwks("http://auth/jwks", clock=clock, fetcher=endpoint)
    with pytest.raises(Unavailable):
        await cold.key_for(key.kid, "ES256")


async def test_hmac_algorithms_never_use_the_jwks() -> None:
    """An HS256 header cannot make a JWKS verifier pick up a public key as a secret."""
    jwks = RemoteJwks("http://auth/jwks", clock=FakeClock(), fetcher=FakeJwksEndpoint())
    with pytest.raises(InvalidToken):
        await jwks.key_for(None, "HS256")


async def test_a_burst_of_unknown_kids_costs_one_fetch() -> None:
    """Concurrent tokens with forged kids share one refetch (single flight), then wait out the
    interval; a real new key is found at once after it."""
    clock = FakeClock()
    old, new = SigningKey.generate(), SigningKey.generate()
    endpoint = FakeJwksEndpoint(old)
    jwks = RemoteJwks("http://auth/jwks", clock=clock, fetcher=endpoint)
    await jwks.key_for(old.kid, "ES256")
    clock.advance(5)
    results = await asyncio.gather(
        *(jwks.key_for(f"forged-{index}", "ES256") for index in range(50)), return_exceptions=True
    )
    assert all(isinstance(result, InvalidToken) for result in results)
    assert endpoint.requests == 2
    endpoint.keys.append(new)
    with pytest.raises(InvalidToken):
        await jwks.key_for(new.kid, "ES256")  # within 5 s of the last fetch
    clock.advance(5)
    assert await jwks.key_for(new.kid, "ES256") is not None
    assert endpoint.requests == 3
