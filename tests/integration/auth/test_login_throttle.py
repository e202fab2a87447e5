"""Login throttling over real gRPC, in process and in the real Redis, on an injected clock.

Clients are told apart the way Istio's ingress gateway tells them: ``TRUSTED_PROXY_HOPS=1`` and
the address the gateway appends to ``x-forwarded-for``. Every test runs against both stores.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from meshcore.testing import FakeClock
from zoptal.auth.v1 import auth_pb2

from tests.mesh import PASSWORD, auth_settings

from .conftest import AuthUnderTest, running_auth

WRONG = "not the password at all"
# Small numbers, so that each rule shows within a few calls.
POLICY = {
    "login_free_failures": 3,
    "login_backoff_base_seconds": 1.0,
    "login_backoff_max_seconds": 8.0,
    "login_account_free_failures": 10,
    "login_account_backoff_max_seconds": 4.0,
    "login_client_max_failures": 12,
    "login_client_window_seconds": 60.0,
    "trusted_proxy_hops": 1,
}


@dataclass
class Outcome:
    code: grpc.StatusCode
    retry_after: float | None = None


@dataclass
class Throttled:
    auth: AuthUnderTest
    clock: FakeClock
    verifications: list[str]

    async def login(self, email: str, password: str, client: str) -> Outcome:
        try:
            await self.auth.stub.Login(
                auth_pb2.LoginRequest(email=email, password=password),
                metadata=(("x-forwarded-for", client),),
            )
        except grpc.aio.AioRpcError as error:
            return Outcome(error.code(), _retry_delay(error))
        return Outcome(grpc.StatusCode.OK)


def _retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return retry.retry_delay.ToNanoseconds() / 1e9
    return None


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_settings(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if request.param == "redis":
        yield {"redis_url": request.getfixturevalue("redis_url")}
    else:
        yield {}


async def _throttled(tmp_path: Path, **overrides: Any) -> AsyncIterator[Throttled]:
    # Wall time starts now, so tokens issued on the fake clock are valid for real clients too.
    clock = FakeClock(start=1_000.0, wall_start=time.time())
    settings = auth_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}", **overrides)
    async with running_auth(settings, clock=clock) as auth:
        await auth.stub.RegisterUser(
            auth_pb2.RegisterUserRequest(email="alice@example.com", password=PASSWORD)
        )
        hasher = auth.app.auth._hasher
        verifications: list[str] = []
        real = hasher._verify_sync

        def counting(stored_hash: str, password: str) -> bool:
            verifications.append(stored_hash)
            return real(stored_hash, password)

        hasher._verify_sync = counting  # type: ignore[method-assign]
        yield Throttled(auth, clock, verifications)


@pytest.fixture
async def throttled(tmp_path: Path, store_settings: dict[str, Any]) -> AsyncIterator[Throttled]:
    async for running in _throttled(tmp_path, **POLICY, **store_settings):
        yield running


async def test_failures_back_off_exponentially_and_the_right_password_works_after(
    throttled: Throttled,
) -> None:
    """3 free failures, then 1 s, 2 s, 4 s blocks (RESOURCE_EXHAUSTED + RetryInfo), refused
    without Argon2 work; once a block is over the right password works and clears the record."""
    t, me = throttled, "203.0.113.10"
    for _ in range(4):  # the 4th failure is the first over the free ones: it starts the block
        assert (await t.login("alice@example.com", WRONG, me)).code.name == "UNAUTHENTICATED"
    for expected in (1.0, 2.0, 4.0):
        checked = len(t.verifications)
        refused = await t.login("alice@example.com", PASSWORD, me)  # even the right password
        assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.retry_after == pytest.approx(expected, abs=0.01)
        assert len(t.verifications) == checked  # the refusal cost no Argon2 work
        t.clock.advance(expected)
        assert (await t.login("alice@example.com", WRONG, me)).code.name == "UNAUTHENTICATED"
    t.clock.advance(8.0)  # the cap: 1, 2, 4, then 8 and never more
    assert (await t.login("alice@example.com", PASSWORD, me)).code == grpc.StatusCode.OK
    # Success cleared this client's record: its free failures are back.
    for _ in range(3):
        assert (await t.login("alice@example.com", WRONG, me)).code.name == "UNAUTHENTICATED"


async def test_the_back_off_is_capped(throttled: Throttled) -> None:
    """However many failures, one client waits at most LOGIN_BACKOFF_MAX_SECONDS."""
    t, me = throttled, "203.0.113.11"
    waits = []
    for _ in range(12):
        outcome = await t.login("nobody@example.com", WRONG, me)
        if outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            assert outcome.retry_after is not None
            waits.append(outcome.retry_after)
            t.clock.advance(outcome.retry_after)
    assert waits
    assert max(waits) <= 8.0


async def test_one_attacking_client_does_not_block_the_owner_elsewhere(
    throttled: Throttled,
) -> None:
    """Blocks of one client on an account leave the owner's client alone."""
    t = throttled
    for _ in range(5):
        await t.login("alice@example.com", WRONG, "198.51.100.66")
    assert (await t.login("alice@example.com", WRONG, "198.51.100.66")).code.name == (
        "RESOURCE_EXHAUSTED"
    )
    assert (await t.login("alice@example.com", PASSWORD, "203.0.113.12")).code.name == "OK"


async def test_a_distributed_attacker_delays_the_owner_by_at_most_the_cap(
    throttled: Throttled,
) -> None:
    """Failures from many addresses block the account for at most 4 s at a time; the owner,
    refused once, gets in when told to come back, although the attacker blocked it again."""
    t, owner = throttled, "203.0.113.13"
    for n in range(11):  # one failure per address: no address reaches its own back-off
        assert (await t.login("alice@example.com", WRONG, f"198.51.100.{n}")).code.name == (
            "UNAUTHENTICATED"
        )
    refused = await t.login("alice@example.com", PASSWORD, owner)
    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.retry_after is not None
    assert 0 < refused.retry_after <= 4.0
    # The attacker, refused too, comes back at the same moment, fails, and blocks the account
    # again (2 s) just before the owner's turn.
    attacker = await t.login("alice@example.com", WRONG, "198.51.100.99")
    assert attacker.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    t.clock.advance(refused.retry_after)
    assert (await t.login("alice@example.com", WRONG, "198.51.100.99")).code.name == (
        "UNAUTHENTICATED"
    )
    assert (await t.login("alice@example.com", PASSWORD, owner)).code == grpc.StatusCode.OK
    # However long the attack, no wait is longer than the account cap.
    for n in range(100, 130):
        outcome = await t.login("alice@example.com", WRONG, f"198.51.100.{n}")
        if outcome.retry_after is not None:
            assert outcome.retry_after <= 4.0
            t.clock.advance(outcome.retry_after)


async def test_one_client_trying_many_accounts_is_limited(throttled: Throttled) -> None:
    """12 failures of one client across accounts, then RESOURCE_EXHAUSTED for any account until
    the 60 s window ends; other clients are not affected."""
    t, stuffer = throttled, "198.51.100.200"
    for n in range(12):
        assert (await t.login(f"user{n}@example.com", WRONG, stuffer)).code.name == (
            "UNAUTHENTICATED"
        )
    refused = await t.login("alice@example.com", PASSWORD, stuffer)
    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.retry_after is not None
    assert 0 < refused.retry_after <= 60.0
    assert (await t.login("alice@example.com", PASSWORD, "203.0.113.14")).code.name == "OK"
    t.clock.advance(refused.retry_after)
    assert (await t.login("alice@example.com", PASSWORD, stuffer)).code.name == "OK"


async def test_a_forged_forwarded_for_entry_does_not_change_the_client(
    throttled: Throttled,
) -> None:
    """With one trusted hop the client is the last entry (the gateway's): addresses the client
    writes to its left change nothing."""
    t, me = throttled, "203.0.113.15"
    for _ in range(4):
        await t.login("alice@example.com", WRONG, me)
    for forged in ("10.9.8.7", "203.0.113.99, 10.9.8.7"):
        outcome = await t.login("alice@example.com", PASSWORD, f"{forged}, {me}")
        assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_without_trusted_hops_the_header_is_ignored(
    tmp_path: Path, store_settings: dict[str, Any]
) -> None:
    """TRUSTED_PROXY_HOPS=0: every call is the peer's, so a client blocked on an account stays
    blocked whatever x-forwarded-for it sends."""
    policy = {**POLICY, "trusted_proxy_hops": 0}
    async for t in _throttled(tmp_path, **policy, **store_settings):
        for _ in range(4):
            await t.login("alice@example.com", WRONG, "203.0.113.16")
        outcome = await t.login("alice@example.com", PASSWORD, "203.0.113.17")
        assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED
