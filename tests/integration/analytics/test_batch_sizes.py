"""The largest TrackEvents batch the proto allows is accepted over real gRPC (PostgreSQL), and
a batch over the documented 16 MiB cap is RESOURCE_EXHAUSTED from gRPC, not a crash."""

from __future__ import annotations

import grpc
import pytest
from zoptal.analytics.v1 import analytics_pb2 as pb

from tests.message_bounds import ANALYTICS_BATCH_CAP

from .conftest import CALLER, direct_count, make_settings, running_analytics

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

WIDE = "\U0001d11e"  # four bytes in UTF-8


def _maximal_event(index: int) -> pb.Event:
    """Every field at its documented bound: 50 properties of 128 + 1024 four-byte characters."""
    return pb.Event(
        event_id=f"size-{index}".ljust(128, "x"),
        user_id=WIDE * 64,
        anonymous_id=WIDE * 128,
        name="n" * 128,
        properties={WIDE * 127 + chr(0x10000 + key): WIDE * 1024 for key in range(50)},
        session_id=WIDE * 128,
    )


def _largest_batch() -> pb.TrackEventsRequest:
    """Maximal events up to the 16 MiB cap, the last one trimmed to land just under it."""
    batch = pb.TrackEventsRequest()
    index = 0
    while True:
        event = _maximal_event(index)
        batch.events.append(event)
        if batch.ByteSize() > ANALYTICS_BATCH_CAP:
            break
        index += 1
    last = batch.events[-1]
    for key in sorted(last.properties, reverse=True):
        del last.properties[key]
        if batch.ByteSize() <= ANALYTICS_BATCH_CAP:
            break
    return batch


async def test_the_largest_valid_batch_is_accepted_and_one_more_event_is_refused(
    postgres_url: str,
) -> None:
    """A batch of maximal events within a few kB of 16 MiB is stored whole; the same batch with
    one more event is over the receive limit: RESOURCE_EXHAUSTED, and the server serves on."""
    settings = make_settings(postgres_url, None)
    batch = _largest_batch()
    assert ANALYTICS_BATCH_CAP - 10_000 < batch.ByteSize() <= ANALYTICS_BATCH_CAP
    over = pb.TrackEventsRequest()
    over.CopyFrom(batch)
    over.events.append(_maximal_event(len(batch.events)))
    assert over.ByteSize() > ANALYTICS_BATCH_CAP
    async with running_analytics(settings) as running:
        reply = await running.stub.TrackEvents(batch, metadata=CALLER, timeout=120)
        assert reply.accepted_count == len(batch.events)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.stub.TrackEvents(over, metadata=CALLER, timeout=120)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "Received message larger than max" in str(refused.value.details())
        small = pb.TrackEventsRequest(events=[pb.Event(event_id="after", user_id="u", name="x")])
        assert (await running.stub.TrackEvents(small, metadata=CALLER)).accepted_count == 1
    assert await direct_count(postgres_url, "event_id LIKE 'size-%'") == len(batch.events)
