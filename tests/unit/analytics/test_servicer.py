"""zoptal_analytics.servicer: request events read into domain inputs."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from meshcore.errors import InvalidArgument
from zoptal.analytics.v1 import analytics_pb2 as pb
from zoptal_analytics.servicer import _EventInputs


def test_request_events_name_a_bad_field_by_its_position_however_read() -> None:
    """Converted lazily, a request's events still name ``events[i]`` by position in the
    request, whether iterated, indexed from the end or sliced."""
    request = pb.TrackEventsRequest(
        events=[
            pb.Event(name="ok", user_id="u"),
            pb.Event(name="late", user_id="u", timestamp=Timestamp(nanos=-1)),
        ]
    )
    events = _EventInputs(request.events, "events")
    assert (len(events), events[0].name, events[-2].name) == (2, "ok", "ok")
    for read in (list, lambda seq: seq[-1], lambda seq: seq[0:2]):
        with pytest.raises(InvalidArgument) as caught:
            read(events)
        assert caught.value.field == "events[1].timestamp"
