"""Password hashing is bounded: a login flood gets RESOURCE_EXHAUSTED at once for what does not
fit, another client still logs in, and Auth's other RPCs answer while every worker is busy.

The single Argon2 worker is held busy by a computation of the pool's own that waits on an event
(the test opens it), so "during the flood" is a state the test controls, not a race with the
clock. Clients are told apart by ``x-forwarded-for`` behind one trusted hop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
from argon2 import extract_parameters
from zoptal.auth.v1 import auth_pb2
from zoptal.clients.errors import api_error

from tests.mesh import PASSWORD, auth_settings

from .conftest import running_auth

ATTACKER = (("x-forwarded-for", "198.51.100.66"),)
VICTIM = (("x-forwarded-for", "203.0.113.20"),)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most 30 s) until the server's state says ``condition``."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never got there")


async def _code(call: object) -> str:
    """The status code's name, or the error's more precise reason (as a typed client reads it)."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        typed = api_error(error)
        if typed.reason != error.code().name:
            assert typed.retry_after is not None  # capacity: waiting helps
        return typed.reason
    return "OK"


async def test_a_login_flood_is_refused_at_once_and_others_still_get_in(tmp_path: Path) -> None:
    settings = auth_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        trusted_proxy_hops=1,
        argon2_max_concurrency=1,
        argon2_max_queue=3,
        argon2_max_per_client=2,
    )
    async with running_auth(settings) as auth:
        victim = await auth.register_and_login("victim@example.com")
        pool = auth.app.auth._hasher.pool
        finished: list[str] = []
        real_verify = auth.app.auth._hasher._verify_sync

        def recording(stored_hash: str, password: str) -> bool:
            finished.append("victim" if password == PASSWORD else "attacker")
            return real_verify(stored_hash, password)

        auth.app.auth._hasher._verify_sync = recording  # type: ignore[method-assign]
        gate = threading.Event()
        occupier = asyncio.create_task(pool.run("occupier", gate.wait, 30.0))
        try:
            await _until(lambda: pool.busy == 1)
            flood = [
                asyncio.create_task(
                    _code(
                        auth.stub.Login(
                            auth_pb2.LoginRequest(
                                email=f"bogus{n}@example.com", password="wrong password!!"
                            ),
                            metadata=ATTACKER,
                        )
                    )
                )
                for n in range(12)
            ]
            # With the worker held, only what the pool admits can still be pending: the other
            # ten are answered now, RESOURCE_EXHAUSTED, without waiting for any hashing.
            done, pending = await asyncio.wait(flood, timeout=30, return_when="FIRST_COMPLETED")
            while len(pending) > 2:
                more, pending = await asyncio.wait(
                    pending, timeout=30, return_when="FIRST_COMPLETED"
                )
                done |= more
            assert len(pending) == 2
            assert [task.result() for task in done] == ["HASHING_BUSY"] * 10
            assert (pool.busy, pool.queued) == (1, 2)
            # The victim, from another client, is admitted behind the attacker's share.
            login = asyncio.create_task(
                _code(
                    auth.stub.Login(
                        auth_pb2.LoginRequest(email="victim@example.com", password=PASSWORD),
                        metadata=VICTIM,
                    )
                )
            )
            await _until(lambda: pool.queued == 3)
            # Auth's other RPCs answer while no hashing can happen at all.
            jwks = await auth.stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=10)
            assert jwks.keys
            verdict = await auth.stub.ValidateToken(
                auth_pb2.ValidateTokenRequest(token=victim.access_token),
                metadata=auth.bearer(victim.access_token),
                timeout=10,
            )
            assert verdict.valid
            refreshed = await auth.stub.RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=victim.refresh_token), timeout=10
            )
            assert refreshed.access_token
            assert (pool.busy, pool.queued) == (1, 3)  # still in the flood
        finally:
            gate.set()
            await occupier
        assert await login == "OK"
        assert sorted(await asyncio.gather(*pending)) == ["UNAUTHENTICATED"] * 2
        # A freed worker went to the client served longest ago: the victim came second, not
        # behind both of the attacker's queued logins.
        assert finished == ["attacker", "victim", "attacker"]


async def test_unknown_and_registered_emails_cost_the_same_argon2_work(auth) -> None:
    """Over gRPC: one Argon2id verification each, with identical parameters."""
    await auth.register_and_login("known@example.com")
    hasher = auth.app.auth._hasher
    verified = []
    real_verify = hasher._verify_sync

    def recording(stored_hash: str, password: str) -> bool:
        verified.append(extract_parameters(stored_hash))
        return real_verify(stored_hash, password)

    hasher._verify_sync = recording
    for email in ("unknown@example.com", "known@example.com"):
        code = await _code(
            auth.stub.Login(auth_pb2.LoginRequest(email=email, password="wrong password!!"))
        )
        assert code == "UNAUTHENTICATED"
    assert len(verified) == 2
    assert verified[0] == verified[1]
