"""Checks of request values that every service needs, each naming the offending field.

Servicers call these at the boundary so a client mistake is INVALID_ARGUMENT with the field's
path, never an exception from deep inside a converter or a database driver.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from meshcore.errors import InvalidArgument

__all__ = ["MAX_TIMESTAMP_SECONDS", "MIN_TIMESTAMP_SECONDS", "timestamp_millis"]

# The range google.protobuf.Timestamp defines: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799


def timestamp_millis(stamp: Timestamp, field: str) -> int:
    """Milliseconds since the epoch, or INVALID_ARGUMENT naming ``field`` when out of range."""
    if not 0 <= stamp.nanos <= 999_999_999:
        raise InvalidArgument(field, "nanos must be between 0 and 999999999")
    if not MIN_TIMESTAMP_SECONDS <= stamp.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument(field, "must be between 0001-01-01 and 9999-12-31")
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000
