"""The pure metering rules: billing periods, threshold crossings and notice keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from zoptal_billing.metering import (
    BillingPeriod,
    Metric,
    crossed_threshold,
    notice_idempotency_key,
)


def test_billing_period_is_the_calendar_month_in_utc() -> None:
    """A moment late on the last day of a month belongs to that month, in UTC."""
    period = BillingPeriod.containing(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert period.key == "2026-11"
    assert period.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert period.end == datetime(2026, 12, 1, tzinfo=UTC)


def test_december_period_ends_at_the_new_year() -> None:
    """The December period ends on January 1st of the next year."""
    period = BillingPeriod.containing(datetime(2026, 12, 15, tzinfo=UTC))
    assert period.end == datetime(2027, 1, 1, tzinfo=UTC)


def test_only_api_calls_reset_each_period() -> None:
    """API calls are a counter; projects, members and storage are gauges."""
    assert [m for m in Metric if m.is_counter] == [Metric.API_CALLS]
    assert [m for m in Metric if m.is_scoped] == [Metric.MEMBERS_PER_PROJECT]


def test_thresholds_are_crossed_once_going_up() -> None:
    """With a limit of 10, 80 % is crossed reaching 8 and 100 % reaching 10; a change crossing
    both is the 100 % one (the 80 % news is stale by then)."""
    assert crossed_threshold(7, 8, 10) == 80
    assert crossed_threshold(8, 9, 10) is None
    assert crossed_threshold(9, 10, 10) == 100
    assert crossed_threshold(0, 12, 10) == 100


def test_eighty_percent_of_a_small_limit_is_not_rounded_down() -> None:
    """80 % of 3 is 2.4: two projects stay below it, the third crosses both thresholds."""
    assert crossed_threshold(1, 2, 3) is None
    assert crossed_threshold(2, 3, 3) == 100


def test_no_thresholds_when_unlimited_or_going_down() -> None:
    """Unlimited metrics and releases never send threshold emails."""
    assert crossed_threshold(0, 100, None) is None
    assert crossed_threshold(10, 7, 10) is None
    assert crossed_threshold(0, 5, 0) is None


def test_notice_key_is_deterministic_and_in_the_key_alphabet() -> None:
    """The same notice always gets the same key; different periods get different keys."""
    key = notice_idempotency_key("user with spaces/é", Metric.PROJECTS, "", "2026-11", 80)
    assert key == notice_idempotency_key("user with spaces/é", Metric.PROJECTS, "", "2026-11", 80)
    assert key != notice_idempotency_key("user with spaces/é", Metric.PROJECTS, "", "2026-12", 80)
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", key)
