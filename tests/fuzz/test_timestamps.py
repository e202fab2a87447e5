"""Timestamps a client can send but protobuf cannot convert (outside 0001-9999, bad nanos).

Found by the generated-request fuzzing: each case is an otherwise valid request from the admin,
so the timestamp is the only thing wrong with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor
from google.protobuf.timestamp_pb2 import Timestamp
from zoptal.analytics.v1 import analytics_pb2 as analytics

from tests.fuzz.calls import call, describe, leaks_internals
from tests.fuzz.catalogue import ALL_RPCS
from tests.fuzz.conftest import Mesh

BAD_TIMESTAMPS = {
    "negative nanos": Timestamp(seconds=1_700_000_000, nanos=-1),
    "nanos of a whole second": Timestamp(seconds=1_700_000_000, nanos=1_000_000_000),
    "after 9999-12-31": Timestamp(seconds=253_402_300_800),
    "before 0001-01-01": Timestamp(seconds=-62_135_596_801),
}


def _hour_ago() -> Timestamp:
    return Timestamp(seconds=int(time.time()) - 3600)


def _now() -> Timestamp:
    return Timestamp(seconds=int(time.time()))


# rpc -> (field named in the error, request carrying the bad timestamp there)
CASES: dict[str, tuple[str, Callable[[Timestamp], Any]]] = {
    "analytics.TrackEvent": (
        "timestamp",
        lambda t: analytics.TrackEventRequest(name="clicked", anonymous_id="anon-1", timestamp=t),
    ),
    "analytics.TrackPageView": (
        "timestamp",
        lambda t: analytics.TrackPageViewRequest(
            url="https://example.com/", anonymous_id="anon-1", timestamp=t
        ),
    ),
    "analytics.TrackEvents": (
        "timestamp",
        lambda t: analytics.TrackEventsRequest(
            events=[analytics.Event(name="clicked", anonymous_id="anon-1", timestamp=t)]
        ),
    ),
    "analytics.IngestEvents": (
        "timestamp",
        lambda t: [
            analytics.IngestEventsRequest(
                events=[analytics.Event(name="clicked", anonymous_id="anon-1", timestamp=t)]
            )
        ],
    ),
    "analytics.GetAnalytics/start_time": (
        "start_time",
        lambda t: analytics.GetAnalyticsRequest(
            start_time=t, end_time=_now(), bucket=analytics.BUCKET_SIZE_HOUR
        ),
    ),
    "analytics.GetAnalytics/end_time": (
        "end_time",
        lambda t: analytics.GetAnalyticsRequest(
            start_time=_hour_ago(), end_time=t, bucket=analytics.BUCKET_SIZE_HOUR
        ),
    ),
}
RPCS = {str(rpc): rpc for rpc in ALL_RPCS}


def _has_timestamp(descriptor: Descriptor, depth: int = 0) -> bool:
    for field in descriptor.fields:
        message = field.message_type
        if message is None or message.GetOptions().map_entry:
            continue
        if message.full_name == "google.protobuf.Timestamp":
            return True
        if depth < 2 and _has_timestamp(message, depth + 1):
            return True
    return False


@pytest.mark.parametrize("bad", sorted(BAD_TIMESTAMPS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_unrepresentable_timestamp_is_invalid_argument_naming_the_field(
    mesh: Mesh, case: str, bad: str
) -> None:
    """A timestamp protobuf cannot convert gets INVALID_ARGUMENT naming that field."""
    field, build = CASES[case]
    rpc = RPCS[case.split("/")[0]]
    request = build(BAD_TIMESTAMPS[bad])
    outcome = call(mesh.channel(rpc), rpc, request, mesh.admin.metadata)
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, describe(rpc, request, outcome)
    assert field in outcome.details
    assert leaks_internals(outcome) is None


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_requests_with_a_valid_timestamp_succeed(mesh: Mesh, case: str) -> None:
    """Control: with a representable timestamp each request is OK, so only the time is at fault."""
    _, build = CASES[case]
    rpc = RPCS[case.split("/")[0]]
    request = build(_hour_ago() if case.endswith("start_time") else _now())
    outcome = call(mesh.channel(rpc), rpc, request, mesh.admin.metadata)
    assert outcome.code == grpc.StatusCode.OK, describe(rpc, request, outcome)


def test_every_request_carrying_a_timestamp_has_a_case() -> None:
    """A new RPC whose request holds a Timestamp must be added to CASES."""
    carrying = {str(rpc) for rpc in ALL_RPCS if _has_timestamp(rpc.method.input_type)}
    assert carrying == {case.split("/")[0] for case in CASES}
