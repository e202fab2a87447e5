"""The revocation feed of a service with its own credential polls Auth only once the service
holds its first token: started together, the first poll used to go out without one, and every
service logged a refused sync (UNAUTHENTICATED) on every start (found running compose for real).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from zoptal.auth.v1 import auth_pb2
from zoptal.clients import revocations

SETTINGS = SimpleNamespace(
    revocation_sync_seconds=1.0,
    revocation_max_staleness_seconds=60.0,
    revocation_fail_mode="closed",
)


class FakeAuth:
    """Stands for AuthServiceClient: records whether the token was there at each poll."""

    polls: list[bool]
    token: asyncio.Event

    def __init__(self, clients: Any) -> None:
        pass

    async def list_revocations(
        self, cursor: str = "", **_: Any
    ) -> auth_pb2.ListRevocationsResponse:
        FakeAuth.polls.append(FakeAuth.token.is_set())
        return auth_pb2.ListRevocationsResponse(next_cursor="c1", has_more=False)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    monkeypatch.setattr(revocations, "AuthServiceClient", FakeAuth)
    FakeAuth.polls = []
    FakeAuth.token = asyncio.Event()
    return FakeAuth.token


async def test_the_first_poll_waits_for_the_first_token(token: asyncio.Event) -> None:
    feed = revocations.auth_revocation_feed(
        object(),
        SETTINGS,
        timeout_ms=5_000,
        token_ready=token.wait,  # type: ignore[arg-type]
    )
    poll = asyncio.create_task(feed.poll_once())
    await asyncio.sleep(0.05)
    assert FakeAuth.polls == []  # not sent while the token is being fetched
    token.set()
    assert await poll is True
    assert FakeAuth.polls == [True]


async def test_without_a_token_in_time_it_polls_anyway(token: asyncio.Event) -> None:
    feed = revocations.auth_revocation_feed(
        object(),
        SETTINGS,
        timeout_ms=20,
        token_ready=token.wait,  # type: ignore[arg-type]
    )
    assert await feed.poll_once() is True
    assert FakeAuth.polls == [False]


async def test_clients_a_test_injects_are_not_waited_for(token: asyncio.Event) -> None:
    feed = revocations.auth_revocation_feed(object(), SETTINGS)  # type: ignore[arg-type]
    assert await feed.poll_once() is True
    assert FakeAuth.polls == [False]
