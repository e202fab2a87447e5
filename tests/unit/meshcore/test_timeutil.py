"""meshcore's time kit: UTC datetimes, Timestamp conversions, the backoff formula, the column."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from meshcore.db import Database
from meshcore.db_types import UtcDateTime
from meshcore.errors import InvalidArgument
from meshcore.testing import FakeClock
from meshcore.timeutil import (
    MAX_TIMESTAMP_SECONDS,
    MIN_TIMESTAMP_SECONDS,
    as_utc,
    backoff,
    from_timestamp,
    from_unix,
    timestamp_millis,
    to_timestamp,
    utc_now,
)
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text

PLUS_TWO = timezone(timedelta(hours=2))


def test_utc_now_reads_the_clock_as_an_aware_utc_datetime() -> None:
    clock = FakeClock(wall_start=1_700_000_000.5)
    assert utc_now(clock) == datetime(2023, 11, 14, 22, 13, 20, 500_000, tzinfo=UTC)
    clock.advance(60)
    assert utc_now(clock) == from_unix(1_700_000_060.5)
    assert utc_now(clock).tzinfo is UTC


def test_as_utc_takes_a_naive_datetime_as_utc_and_converts_an_aware_one() -> None:
    naive = datetime(2024, 2, 29, 12, 0)
    assert as_utc(naive) == datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    shifted = as_utc(datetime(2024, 2, 29, 14, 0, tzinfo=PLUS_TWO))
    assert shifted == datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert shifted.tzinfo is UTC


def test_to_timestamp_takes_datetimes_and_epoch_seconds() -> None:
    moment = datetime(2024, 2, 29, 14, 0, 0, 123_456, tzinfo=PLUS_TWO)
    stamp = to_timestamp(moment)
    assert (stamp.seconds, stamp.nanos) == (1_709_208_000, 123_456_000)
    assert to_timestamp(datetime(2024, 2, 29, 12, 0, 0, 123_456)) == stamp
    seconds = to_timestamp(1_709_208_000.25)
    assert seconds.seconds == 1_709_208_000
    assert seconds.nanos == pytest.approx(250_000_000, abs=1_000)  # a float holds about 0.1 µs
    assert to_timestamp(None) is None


def test_from_timestamp_round_trips_to_an_aware_utc_datetime() -> None:
    moment = datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    back = from_timestamp(to_timestamp(moment), "at")
    assert back == moment
    assert back.tzinfo is UTC
    assert from_timestamp(Timestamp(seconds=MIN_TIMESTAMP_SECONDS), "at").year == 1
    assert from_timestamp(Timestamp(seconds=MAX_TIMESTAMP_SECONDS), "at").year == 9999


def test_timestamp_millis_keeps_whole_milliseconds() -> None:
    stamp = Timestamp(seconds=1_700_000_000, nanos=987_654_321)
    assert timestamp_millis(stamp, "at") == 1_700_000_000_987


OUT_OF_RANGE = {
    "negative nanos": (Timestamp(seconds=0, nanos=-1), "nanos"),
    "a whole second of nanos": (Timestamp(seconds=0, nanos=1_000_000_000), "nanos"),
    "after 9999-12-31": (Timestamp(seconds=MAX_TIMESTAMP_SECONDS + 1), "9999-12-31"),
    "before 0001-01-01": (Timestamp(seconds=MIN_TIMESTAMP_SECONDS - 1), "0001-01-01"),
}


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
@pytest.mark.parametrize("convert", [from_timestamp, timestamp_millis])
def test_a_timestamp_no_datetime_holds_is_invalid_argument_naming_the_field(
    case: str, convert: object
) -> None:
    """The caller's mistake, with its field, never protobuf's own ValueError."""
    stamp, problem = OUT_OF_RANGE[case]
    with pytest.raises(InvalidArgument) as raised:
        convert(stamp, "events[2].timestamp")  # type: ignore[operator]
    assert raised.value.field == "events[2].timestamp"
    assert problem in str(raised.value)


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff(n, 1.0, 10.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff(0, 0.5, 60.0) == 0.5  # "no failure yet" waits the base, not less


def test_backoff_survives_an_outage_of_any_length() -> None:
    """A float would overflow at 2**1024: a feed failing every 10 s gets there in 3 hours."""
    assert backoff(10_000, 0.5, 60.0) == 60.0
    assert backoff(10**9, 1.0, float("inf")) == 2.0**60


def test_full_jitter_spreads_over_zero_to_the_ceiling() -> None:
    """``spread=1`` (the default): every wait in [0, ceiling], reaching near both ends."""
    rng = random.Random(7)
    for attempt in range(1, 9):
        ceiling = min(2.0, 0.1 * 2 ** (attempt - 1))
        samples = [backoff(attempt, 0.1, 2.0, rng) for _ in range(2_000)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert min(samples) < 0.05 * ceiling
        assert max(samples) > 0.95 * ceiling


def test_a_smaller_spread_keeps_the_rest_of_the_wait() -> None:
    rng = random.Random(11)
    samples = [backoff(3, 1.0, 30.0, rng, spread=0.5) for _ in range(2_000)]
    assert all(2.0 <= s <= 4.0 for s in samples)
    assert min(samples) < 2.1
    assert max(samples) > 3.9


async def test_utc_datetime_column_stores_utc_and_hands_back_aware_utc(
    sqlite_or_postgres_url: str,
) -> None:
    metadata = MetaData()
    table = Table(
        "moments", metadata, Column("id", Integer, primary_key=True), Column("at", UtcDateTime)
    )
    database = Database(sqlite_or_postgres_url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with database.session() as session:
            await session.execute(
                insert(table),
                [
                    {"id": 1, "at": datetime(2024, 1, 1, 14, 0, tzinfo=PLUS_TWO)},
                    {"id": 2, "at": datetime(2024, 1, 1, 12, 30, tzinfo=UTC)},
                    {"id": 3, "at": None},
                ],
            )
        async with database.session() as session:
            rows = dict((await session.execute(select(table.c.id, table.c.at))).all())
            # Compared in the database: SQLite compares text, so both must be written in UTC.
            later = select(table.c.id).where(table.c.at > datetime(2024, 1, 1, 12, 15, tzinfo=UTC))
            after = (await session.execute(later)).scalars().all()
            raw = (await session.execute(text("SELECT at FROM moments WHERE id = 1"))).scalar()
        assert rows == {
            1: datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
            2: datetime(2024, 1, 1, 12, 30, tzinfo=UTC),
            3: None,
        }
        assert all(value is None or value.tzinfo is UTC for value in rows.values())
        assert after == [2]
        if database.engine.dialect.name == "sqlite":
            assert str(raw).startswith("2024-01-01 12:00:00")
        with pytest.raises(ValueError, match="naive"):
            UtcDateTime().process_bind_param(datetime(2024, 1, 1), database.engine.dialect)
    finally:
        await database.dispose()
