"""How Billing's servicer builds replies: exact timestamps (meshcore.timeutil.to_timestamp, in
integer arithmetic), plan messages built once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from meshcore.timeutil import to_timestamp
from zoptal.billing.v1 import billing_pb2 as pb
from zoptal_billing.domain import Plan
from zoptal_billing.metering import Metric
from zoptal_billing.servicer import plan_to_pb


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 7, 8, 30, 12, 345_678, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_timestamps_are_exact(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment)
    assert to_timestamp(moment) == expected


def test_a_plan_message_is_built_once_and_copied_into_replies() -> None:
    plan = Plan("team", "Team", "", 900, "USD", "month", {Metric.PROJECTS: 50})
    message = plan_to_pb(plan)
    assert plan_to_pb(plan) is message
    reply = pb.Subscription(plan=message)
    reply.plan.name = "changed in one reply"
    assert plan_to_pb(plan).name == "Team"
    limits = {limit.metric: (limit.limit, limit.unlimited) for limit in message.limits}
    assert limits[pb.METRIC_PROJECTS] == (50, False)
    assert limits[pb.METRIC_API_CALLS] == (0, True)


def test_another_plan_object_with_the_same_id_gets_its_own_message() -> None:
    before = plan_to_pb(Plan("solo", "Solo", "", 100, "USD", "month", {}))
    after = plan_to_pb(Plan("solo", "Solo v2", "", 100, "USD", "month", {}))
    assert (before.name, after.name) == ("Solo", "Solo v2")
