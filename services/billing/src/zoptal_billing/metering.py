"""What Billing meters: the metrics, their kinds, billing periods and the warning thresholds.

Plain values with no I/O, so the rules that decide what is counted, when it resets and when an
email goes out are tested without a database.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from meshcore.timeutil import from_unix

__all__ = [
    "GAUGE_PERIOD",
    "THRESHOLD_PERCENTS",
    "BillingPeriod",
    "Metric",
    "crossed_threshold",
    "notice_idempotency_key",
]


class Metric(enum.StrEnum):
    """A metered quantity a plan limits (stored by value; see ``zoptal.billing.v1.Metric``)."""

    PROJECTS = "projects"
    MEMBERS_PER_PROJECT = "members_per_project"
    API_CALLS = "api_calls"
    STORAGE_BYTES = "storage_bytes"

    @property
    def is_counter(self) -> bool:
        """Counters accumulate per billing period and reset; gauges are current totals."""
        return self is Metric.API_CALLS

    @property
    def is_scoped(self) -> bool:
        """Scoped metrics are counted per project (``scope_id``), not per user."""
        return self is Metric.MEMBERS_PER_PROJECT


USER_WIDE_METRICS: tuple[Metric, ...] = (
    Metric.PROJECTS,
    Metric.API_CALLS,
    Metric.STORAGE_BYTES,
)
"""The metrics GetUserSubscription reports (per-project members are reported per project)."""

GAUGE_PERIOD = "gauge"
"""The period key under which gauge totals live: they never reset."""

THRESHOLD_PERCENTS: tuple[int, ...] = (80, 100)
"""Crossing these percentages of a limit sends at most one email per threshold, metric and
period (ascending: a change crossing several emails the highest, see ``crossed_threshold``)."""


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """A calendar month in UTC: every subscription's usage resets on the first of the month.

    Calendar months (rather than months anchored on each subscription's start) keep the period
    of a record computable from its timestamp alone, which the idempotent replay relies on.
    """

    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.start.year:04d}-{self.start.month:02d}"

    @classmethod
    def containing(cls, moment: datetime) -> BillingPeriod:
        moment = moment.astimezone(UTC)
        start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        if moment.month == 12:
            end = datetime(moment.year + 1, 1, 1, tzinfo=UTC)
        else:
            end = datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)
        return cls(start=start, end=end)

    @classmethod
    def at_epoch_seconds(cls, seconds: float) -> BillingPeriod:
        return cls.containing(from_unix(seconds))


def crossed_threshold(before: int, after: int, limit: int | None) -> int | None:
    """The highest threshold percentage usage crosses upwards going from ``before`` to ``after``.

    One change may cross several (2 to 3 of a limit of 3 is both 80 % and 100 %): only the
    highest is news, so only it is emailed. Integer arithmetic (``used * 100 >= percent *
    limit``), so 80 % of a limit of 3 is reached at 3 (2.4 rounds up), never at 2; an unlimited
    metric or a zero limit has no thresholds.
    """
    if limit is None or limit <= 0 or after <= before:
        return None
    crossed = [p for p in THRESHOLD_PERCENTS if before * 100 < p * limit <= after * 100]
    return crossed[-1] if crossed else None


def notice_idempotency_key(
    user_id: str, metric: Metric, scope_id: str, period_key: str, percent: int
) -> str:
    """The SendEmail idempotency key of one threshold email: the same for every retry.

    Derived from what makes the notice unique, and hashed because user and scope ids may use
    characters the key's ``[A-Za-z0-9._:-]`` alphabet does not allow.
    """
    identity = "\x1f".join((user_id, metric.value, scope_id, period_key, str(percent)))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:40]
    return f"billing.usage-threshold:{percent}:{digest}"
