"""AuthInterceptor's revocation check: asked on every call, verified-token cache hits included."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import grpc
import grpc.aio
import pytest
from meshcore.context import Principal
from meshcore.errors import Unavailable
from meshcore.interceptors import AuthInterceptor, ErrorMappingInterceptor
from meshcore.interceptors.chain import build_server_chain
from meshcore.revocation import RevocationCheck, RevocationFeed, RevocationPage, RevokedEntry
from prometheus_client import CollectorRegistry

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    HS256_AUTH,
    SERVICE_SECRET,
    USER_SECRET,
    EchoFactory,
    user_token,
)


class SetCheck:
    """A RevocationCheck over a set of jti values that counts how often it was asked."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.asked = 0
        self.unavailable = False

    def is_revoked(self, principal: Principal) -> bool:
        self.asked += 1
        if self.unavailable:
            raise Unavailable("revocation list is stale (test)")
        return principal.claims.get("jti") in self.revoked


def _auth(check: SetCheck) -> AuthInterceptor:
    return _auth_with(check)


def _auth_with(check: RevocationCheck) -> AuthInterceptor:
    return AuthInterceptor(
        USER_SECRET, SERVICE_SECRET, issuer="zoptal-auth", audience="zoptal", revocations=check
    )


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_a_cached_token_is_refused_once_it_is_revoked(echo: EchoFactory) -> None:
    """Accepted (and cached), then revoked: the next call is UNAUTHENTICATED, saying so."""
    check = SetCheck()
    auth = _auth(check)
    client = await echo([auth, ErrorMappingInterceptor()])
    metadata = _bearer(user_token(time.time(), jti="token-1"))
    await client.unary(b"x", metadata=metadata)
    assert len(auth.cache) == 1
    check.revoked.add("token-1")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x", metadata=metadata)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details() == "token has been revoked"
    assert check.asked == 2


async def test_the_check_runs_on_every_cache_hit(echo: EchoFactory) -> None:
    """Three calls with one token: verified once, checked three times."""
    check = SetCheck()
    client = await echo([_auth(check), ErrorMappingInterceptor()])
    metadata = _bearer(user_token(time.time(), jti="token-2"))
    for _ in range(3):
        await client.unary(b"x", metadata=metadata)
    assert check.asked == 3


async def test_an_unsure_check_makes_the_call_unavailable(echo: EchoFactory) -> None:
    """A check that cannot vouch for its view (stale, fail closed) answers UNAVAILABLE."""
    check = SetCheck()
    check.unavailable = True
    client = await echo([_auth(check), ErrorMappingInterceptor()])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x", metadata=_bearer(user_token(time.time(), jti="t")))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "stale" in (raised.value.details() or "")


async def test_authenticate_refuses_a_revoked_token() -> None:
    """The programmatic authenticate() applies the same check."""
    check = SetCheck()
    check.revoked.add("token-3")
    auth = _auth(check)
    with pytest.raises(Exception, match="token has been revoked"):
        await auth.authenticate(_bearer(user_token(time.time(), jti="token-3")))


async def test_build_server_chain_hands_the_check_to_the_auth_layer(echo: EchoFactory) -> None:
    """build_server_chain(revocations=...) wires the check into the fused chain."""
    check = SetCheck()
    check.revoked.add("token-4")
    chain = build_server_chain(
        None,
        auth=replace(HS256_AUTH, service_token_secret=SERVICE_SECRET, revocations=check),
        rate_limit=None,
        tracer_provider=None,
        metrics_registry=CollectorRegistry(),
    )
    client = await echo(chain)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x", metadata=_bearer(user_token(time.time(), jti="token-4")))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await client.unary(b"x", metadata=_bearer(user_token(time.time(), jti="other")))


async def test_calls_before_the_first_sync_wait_for_it(echo: EchoFactory) -> None:
    """A call that arrives while the feed has not synced yet is served once the sync lands."""
    released, asked = asyncio.Event(), asyncio.Event()

    async def fetch(cursor: str) -> RevocationPage:
        await released.wait()
        return RevocationPage([RevokedEntry("gone", None, time.time() + 60)], "1")

    class SignallingFeed(RevocationFeed):
        def is_revoked(self, principal: Principal) -> bool:
            asked.set()
            return super().is_revoked(principal)

    feed = SignallingFeed(fetch)
    client = await echo([_auth_with(feed), ErrorMappingInterceptor()])
    feed.start()
    try:
        pending = asyncio.ensure_future(
            client.unary(b"x", metadata=_bearer(user_token(time.time(), jti="fine")))
        )
        await asyncio.wait_for(asked.wait(), 5)  # the call reached the check before any sync
        assert not feed.synced
        released.set()
        assert (await asyncio.wait_for(pending, 5)).split(b"|")[1] == b"user-1"
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.unary(b"x", metadata=_bearer(user_token(time.time(), jti="gone")))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await feed.stop()
