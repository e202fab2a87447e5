"""Request checks shared by every service name the field they reject."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from meshcore.errors import InvalidArgument
from meshcore.validation import MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS, timestamp_millis


def test_timestamp_converts_to_milliseconds() -> None:
    """Seconds and nanos become whole milliseconds since the epoch."""
    assert timestamp_millis(Timestamp(seconds=1_700_000_000, nanos=987_654_321), "at") == (
        1_700_000_000_987
    )


@pytest.mark.parametrize(
    "stamp",
    [
        Timestamp(seconds=0, nanos=-1),
        Timestamp(seconds=0, nanos=1_000_000_000),
        Timestamp(seconds=MAX_TIMESTAMP_SECONDS + 1),
        Timestamp(seconds=MIN_TIMESTAMP_SECONDS - 1),
    ],
)
def test_out_of_range_timestamp_names_the_field(stamp: Timestamp) -> None:
    """A timestamp protobuf itself cannot represent is the caller's mistake, with its field."""
    with pytest.raises(InvalidArgument) as raised:
        timestamp_millis(stamp, "events[2].timestamp")
    assert raised.value.field == "events[2].timestamp"
