"""Time and its conversions, defined once for meshcore and every service.

Every time a service stores, compares or sends is an aware UTC ``datetime``, read from an
injectable ``Clock`` (tests move it by hand). ``google.protobuf.Timestamp`` converts both ways
here; on the way in, the range that type defines is checked, because a client can send seconds
or nanos that no datetime holds and the answer must be INVALID_ARGUMENT naming the field.
``backoff`` is the one exponential-backoff formula of every loop that waits after failures.
The SQLAlchemy column type for these datetimes is ``meshcore.db_types.UtcDateTime``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import overload

from google.protobuf.timestamp_pb2 import Timestamp

from meshcore.clock import Clock
from meshcore.errors import InvalidArgument

__all__ = [
    "MAX_TIMESTAMP_SECONDS",
    "MIN_TIMESTAMP_SECONDS",
    "as_utc",
    "backoff",
    "from_timestamp",
    "from_unix",
    "timestamp_millis",
    "to_timestamp",
    "utc_now",
]

# The range google.protobuf.Timestamp defines: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799

_MAX_EXPONENT = 60
"""``base * 2**60`` is past any sensible cap; bounding the exponent keeps the attempt count of a
long outage from overflowing a float (the Lua of Auth's Redis login store bounds it alike)."""


def utc_now(clock: Clock) -> datetime:
    """The clock's wall time as an aware UTC datetime."""
    return from_unix(clock.time())


def from_unix(seconds: float) -> datetime:
    """Seconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken to be UTC already, because that is how SQLite
    hands back the UTC times it was given (it drops the zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@overload
def to_timestamp(moment: datetime | float) -> Timestamp: ...
@overload
def to_timestamp(moment: None) -> None: ...
def to_timestamp(moment: datetime | float | None) -> Timestamp | None:
    """A datetime (a naive one is UTC) or seconds since the epoch as a ``Timestamp``; None stays
    None, which leaves a message field unset."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        # Integer arithmetic on the difference: a quarter of what Timestamp.FromDatetime costs,
        # and a reply may carry a dozen timestamps.
        since = as_utc(moment) - _EPOCH
        return Timestamp(
            seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000
        )
    stamp = Timestamp()
    stamp.FromNanoseconds(int(moment * 1_000_000_000))
    return stamp


def _check_timestamp(stamp: Timestamp, field: str) -> None:
    """INVALID_ARGUMENT naming ``field`` unless ``stamp`` is in the range Timestamp defines."""
    if not 0 <= stamp.nanos <= 999_999_999:
        raise InvalidArgument(field, "nanos must be between 0 and 999999999")
    if not MIN_TIMESTAMP_SECONDS <= stamp.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument(field, "must be between 0001-01-01 and 9999-12-31")


def from_timestamp(stamp: Timestamp, field: str) -> datetime:
    """A request's ``Timestamp`` as an aware UTC datetime; INVALID_ARGUMENT naming ``field``
    when no datetime holds it."""
    _check_timestamp(stamp, field)
    return stamp.ToDatetime(UTC)


def timestamp_millis(stamp: Timestamp, field: str) -> int:
    """A request's ``Timestamp`` in milliseconds since the epoch, checked as ``from_timestamp``."""
    _check_timestamp(stamp, field)
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


def backoff(
    attempt: int, base: float, cap: float, rng: random.Random | None = None, *, spread: float = 1.0
) -> float:
    """Seconds to wait after the ``attempt``-th failure in a row (1-based): ``base``, doubled
    per further failure, at most ``cap``.

    With ``rng`` the wait is jittered, so callers that failed together do not retry in
    lockstep: drawn uniformly from the top ``spread`` of it, ``[(1 - spread) * wait, wait]``.
    ``spread=1`` is "full jitter" (AWS Architecture Blog), ``0.5`` keeps at least half the wait.
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt - 1, 0), _MAX_EXPONENT))
    if rng is None:
        return ceiling
    return ceiling * (1.0 - spread + spread * rng.random())
