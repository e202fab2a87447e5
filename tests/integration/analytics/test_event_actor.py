"""Every event has an actor (issue 17, item 5): over real gRPC against the real PostgreSQL.

A service or an admin tracks events of anyone, so it must say whose: an event with neither
``user_id`` nor ``anonymous_id`` is INVALID_ARGUMENT on every ingest path, naming the field.
A user's token says whose the event is: their empty ``user_id`` becomes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

import grpc
import pytest
from meshcore.db import Database
from sqlalchemy import text
from zoptal.analytics.v1 import analytics_pb2 as pb, analytics_pb2_grpc

from tests.tokens import MINT

from .conftest import CALLER, direct_count, make_settings, running_analytics

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

ADMIN = MINT.as_user("root", roles=("admin",))
ADA = MINT.as_user("ada")
Metadata = tuple[tuple[str, str], ...]


async def _refusal(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value


async def _no_actor_refusals(
    stub: analytics_pb2_grpc.AnalyticsServiceAsyncStub, metadata: Metadata
) -> dict[str, tuple[grpc.StatusCode, str]]:
    """(code, details) of each ingest RPC sent an event without an actor by ``metadata``."""
    batch = [pb.Event(name="ok", user_id="u1"), pb.Event(name="no.actor")]

    async def chunks() -> AsyncIterator[pb.IngestEventsRequest]:
        yield pb.IngestEventsRequest(events=batch)

    calls: dict[str, Awaitable[object]] = {
        "TrackEvent": stub.TrackEvent(pb.TrackEventRequest(name="no.actor"), metadata=metadata),
        "TrackPageView": stub.TrackPageView(
            pb.TrackPageViewRequest(url="https://zoptal.io/"), metadata=metadata
        ),
        "TrackEvents": stub.TrackEvents(pb.TrackEventsRequest(events=batch), metadata=metadata),
        "IngestEvents": stub.IngestEvents(chunks(), metadata=metadata),
    }
    answers = {}
    for method, call in calls.items():
        error = await _refusal(call)
        answers[method] = (error.code(), (error.details() or "").split(":")[0])
    return answers


@pytest.mark.parametrize("metadata", [CALLER, ADMIN], ids=["service", "admin"])
async def test_an_event_without_actor_is_refused_on_every_ingest_path(
    postgres_url: str, metadata: Metadata
) -> None:
    settings = make_settings(postgres_url, None)
    async with running_analytics(settings) as running:
        answers = await _no_actor_refusals(running.stub, metadata)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert answers == {
        "TrackEvent": (invalid, "user_id"),
        "TrackPageView": (invalid, "user_id"),
        "TrackEvents": (invalid, "events[1].user_id"),
        "IngestEvents": (invalid, "events[1].user_id"),
    }
    assert await direct_count(postgres_url) == 0


async def test_a_users_event_without_user_id_is_theirs(postgres_url: str) -> None:
    """Ada's token is the actor: with neither id, or with only a device id, the event is hers."""
    settings = make_settings(postgres_url, None)
    async with running_analytics(settings) as running:
        await running.stub.TrackEvent(pb.TrackEventRequest(name="clicked"), metadata=ADA)
        await running.stub.TrackPageView(
            pb.TrackPageViewRequest(anonymous_id="device-7", url="https://zoptal.io/"),
            metadata=ADA,
        )
    database = Database(postgres_url)
    try:
        async with database.connection() as connection:
            rows = await connection.execute(
                text("SELECT name, user_id, anonymous_id, actor FROM events ORDER BY name")
            )
            stored = [tuple(row) for row in rows]
    finally:
        await database.dispose()
    assert stored == [("clicked", "ada", "", "u:ada"), ("page_view", "ada", "device-7", "u:ada")]
