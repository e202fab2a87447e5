"""Request checks shared by every service name the field they reject."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from meshcore.errors import FieldViolation, InvalidArgument, NotFound
from meshcore.timeutil import MAX_TIMESTAMP_SECONDS, timestamp_millis
from meshcore.validation import Violations


def check_report(start: Timestamp, end: Timestamp, limit: int) -> tuple[int, int]:
    """A request check the way servicers write it: every independent field, then one error."""
    with Violations() as violations:
        with violations.check():
            start_ms = timestamp_millis(start, "start_time")
        if not 0 <= limit <= 100:
            violations.add("limit", "must be 0..100")
        with violations.check():
            end_ms = timestamp_millis(end, "end_time")
    return start_ms, end_ms


def collect(*errors: InvalidArgument) -> None:
    with Violations() as violations:
        for error in errors:
            with violations.check():
                raise error


def test_violations_report_every_independent_field_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_report(Timestamp(nanos=-1), Timestamp(seconds=MAX_TIMESTAMP_SECONDS + 1), 101)
    assert caught.value.violations == (
        FieldViolation("start_time", "nanos must be between 0 and 999999999"),
        FieldViolation("limit", "must be 0..100"),
        FieldViolation("end_time", "must be between 0001-01-01 and 9999-12-31"),
    )
    assert caught.value.reason == "INVALID_ARGUMENT"


def test_violations_pass_a_valid_request_through() -> None:
    assert check_report(Timestamp(seconds=1), Timestamp(seconds=2), 100) == (1000, 2000)


def test_violations_raise_a_lone_error_unchanged_with_its_reason() -> None:
    lone = InvalidArgument("payment_token", "is required", reason="PAYMENT_REQUIRED")
    with pytest.raises(InvalidArgument) as caught:
        collect(lone)
    assert caught.value is lone


def test_violations_keep_a_reason_all_of_them_share_and_drop_a_mixed_one() -> None:
    with pytest.raises(InvalidArgument) as shared:
        collect(
            InvalidArgument("a", "bad", reason="SAME"), InvalidArgument("b", "bad", reason="SAME")
        )
    assert shared.value.reason == "SAME"
    with pytest.raises(InvalidArgument) as mixed:
        collect(InvalidArgument("a", "bad", reason="ONE"), InvalidArgument("b", "bad"))
    assert mixed.value.reason == "INVALID_ARGUMENT"
    assert [v.field for v in mixed.value.violations] == ["a", "b"]


def test_violations_pass_other_errors_through() -> None:
    def failing() -> None:
        with Violations() as violations, violations.check():
            raise NotFound("project", "p-1")

    with pytest.raises(NotFound):
        failing()
