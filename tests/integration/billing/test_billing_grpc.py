"""BillingService over a real gRPC channel, behind meshcore's chain, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import func, select
from zoptal.billing.v1 import billing_pb2 as pb
from zoptal_billing.models import ThresholdNoticeRow
from zoptal_billing.notices import ThresholdNotice, compose_email

from tests.integration.billing.billing_harness import (
    RunningBilling,
    as_service,
    as_user,
    billing_settings,
    running_billing,
)

pytestmark = pytest.mark.postgres

METER = as_service("project", "billing:read", "billing:write")
GIB = 1024**3
"""The free plan's storage limit."""


class Outbox:
    """Collects the threshold notices the dispatcher delivers."""

    def __init__(self) -> None:
        self.sent: list[ThresholdNotice] = []

    async def send(self, notice: ThresholdNotice) -> None:
        self.sent.append(notice)


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
async def billing(postgres_url: str, outbox: Outbox) -> AsyncIterator[RunningBilling]:
    async with running_billing(billing_settings(postgres_url), sender=outbox) as running:
        yield running


def projects(
    user: str, key: str, *, enforce: bool = True, quantity: int = 1
) -> pb.RecordUsageRequest:
    return pb.RecordUsageRequest(
        user_id=user,
        metric=pb.METRIC_PROJECTS,
        quantity=quantity,
        idempotency_key=key,
        enforce_limit=enforce,
    )


async def expect(code: grpc.StatusCode, call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    assert error.value.code() == code, error.value.details()
    return error.value.details() or ""


async def test_plans_are_listed_cheapest_first(billing: RunningBilling) -> None:
    """Any signed-in user sees free, pro and enterprise with a limit per metric."""
    reply = await billing.stub.GetSubscriptionPlans(
        pb.GetSubscriptionPlansRequest(), metadata=as_user("ada")
    )
    assert [plan.id for plan in reply.plans] == ["free", "pro", "enterprise"]
    free = reply.plans[0]
    assert [(limit.metric, limit.limit) for limit in free.limits][:2] == [
        (pb.METRIC_PROJECTS, 3),
        (pb.METRIC_MEMBERS_PER_PROJECT, 5),
    ]
    assert all(limit.unlimited for limit in reply.plans[2].limits)


async def test_anonymous_calls_are_unauthenticated(billing: RunningBilling) -> None:
    """Without a token nothing is answered."""
    await expect(
        grpc.StatusCode.UNAUTHENTICATED,
        billing.stub.GetSubscriptionPlans(pb.GetSubscriptionPlansRequest()),
    )


async def test_users_see_only_their_own_subscription(billing: RunningBilling) -> None:
    """Ada reads hers (free by default); Bob is denied; a billing:read service may read it."""
    own = await billing.stub.GetUserSubscription(
        pb.GetUserSubscriptionRequest(user_id="ada"), metadata=as_user("ada")
    )
    assert own.subscription.plan.id == "free"
    assert [usage.metric for usage in own.usage] == [
        pb.METRIC_PROJECTS,
        pb.METRIC_API_CALLS,
        pb.METRIC_STORAGE_BYTES,
    ]
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        billing.stub.GetUserSubscription(
            pb.GetUserSubscriptionRequest(user_id="ada"), metadata=as_user("bob")
        ),
    )
    await billing.stub.GetUserSubscription(
        pb.GetUserSubscriptionRequest(user_id="ada"), metadata=METER
    )


async def test_record_usage_is_for_services_only(billing: RunningBilling) -> None:
    """A user cannot meter their own usage, not even downwards."""
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        billing.stub.RecordUsage(projects("ada", "k", quantity=-1), metadata=as_user("ada")),
    )


async def test_replay_returns_the_first_record_and_other_parameters_are_refused(
    billing: RunningBilling,
) -> None:
    """The same key answers the first record (replayed); another quantity is ALREADY_EXISTS."""
    first = await billing.stub.RecordUsage(projects("ada", "p-1"), metadata=METER)
    again = await billing.stub.RecordUsage(projects("ada", "p-1"), metadata=METER)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.record.id == first.record.id
    assert again.period_usage.used == 1
    details = await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        billing.stub.RecordUsage(projects("ada", "p-1", quantity=2), metadata=METER),
    )
    assert "idempotency_key" in details


async def test_concurrent_record_usage_over_grpc_counts_once(billing: RunningBilling) -> None:
    """Twenty simultaneous RPCs with one key: one original, usage 1."""
    replies = await asyncio.gather(
        *(billing.stub.RecordUsage(projects("ada", "same"), metadata=METER) for _ in range(20))
    )
    assert sum(not reply.replayed for reply in replies) == 1
    check = await billing.stub.CheckSubscriptionLimits(
        pb.CheckSubscriptionLimitsRequest(user_id="ada", metric=pb.METRIC_PROJECTS),
        metadata=METER,
    )
    assert (check.current_usage, check.limit, check.remaining) == (1, 3, 2)


async def test_enforced_limit_is_resource_exhausted_naming_it(billing: RunningBilling) -> None:
    """The fourth enforced project on the free plan is refused with the limit in the message."""
    for index in range(3):
        await billing.stub.RecordUsage(projects("ada", f"p{index}"), metadata=METER)
    details = await expect(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        billing.stub.RecordUsage(projects("ada", "p3"), metadata=METER),
    )
    assert "projects limit is 3" in details


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.RecordUsageRequest(user_id="ada", quantity=1, idempotency_key="k"), "metric"),
        (
            pb.RecordUsageRequest(
                user_id="ada", metric=pb.METRIC_MEMBERS_PER_PROJECT, quantity=1, idempotency_key="k"
            ),
            "scope_id",
        ),
        (
            pb.RecordUsageRequest(
                user_id="ada", metric=pb.METRIC_API_CALLS, quantity=-1, idempotency_key="k"
            ),
            "quantity",
        ),
        (
            pb.RecordUsageRequest(
                user_id="ada", metric=pb.METRIC_API_CALLS, quantity=1, idempotency_key="a b"
            ),
            "idempotency_key",
        ),
        (
            pb.RecordUsageRequest(metric=pb.METRIC_API_CALLS, quantity=1, idempotency_key="k"),
            "user_id",
        ),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    billing: RunningBilling, request_: pb.RecordUsageRequest, field: str
) -> None:
    """Each malformed RecordUsage names the field to fix."""
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT, billing.stub.RecordUsage(request_, metadata=METER)
    )
    assert details.startswith(f"{field}:")


async def test_downgrade_below_usage_is_failed_precondition(billing: RunningBilling) -> None:
    """Ada is granted pro, uses four projects, and cannot go back to free."""
    changed = await billing.stub.ChangeSubscription(
        pb.ChangeSubscriptionRequest(user_id="ada", plan_id="pro", complimentary=True),
        metadata=as_user("root", roles=("user", "admin")),
    )
    assert changed.subscription.plan.id == "pro"
    for index in range(4):
        await billing.stub.RecordUsage(projects("ada", f"p{index}"), metadata=METER)
    details = await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        billing.stub.ChangeSubscription(
            pb.ChangeSubscriptionRequest(user_id="ada", plan_id="free"), metadata=as_user("ada")
        ),
    )
    assert "projects" in details
    await expect(
        grpc.StatusCode.NOT_FOUND,
        billing.stub.ChangeSubscription(
            pb.ChangeSubscriptionRequest(user_id="ada", plan_id="gold"), metadata=as_user("ada")
        ),
    )


# Usage-threshold emails (issue 17, item 5): one per threshold, metric and period, and only news.
# What Notification would receive is what the dispatcher hands its sender; the outbox table is
# everything Billing will ever send.


async def record(
    billing: RunningBilling, metric: pb.Metric, quantities: list[int], *, scope_id: str = ""
) -> None:
    """RecordUsage of each quantity for Ada, in order, each under a key of its own."""
    for index, quantity in enumerate(quantities):
        await billing.stub.RecordUsage(
            pb.RecordUsageRequest(
                user_id="ada",
                metric=metric,
                quantity=quantity,
                idempotency_key=f"{pb.Metric.Name(metric)}-{index}",
                scope_id=scope_id,
            ),
            metadata=METER,
        )


async def sent_once_drained(billing: RunningBilling, outbox: Outbox) -> list[tuple[int, int]]:
    """(threshold, used) of every notice sent, once Billing has none left to send."""

    async def undelivered() -> int:
        async with billing.app.database.session() as session:
            query = select(func.count()).where(ThresholdNoticeRow.delivered_at.is_(None))
            return int(await session.scalar(query) or 0)

    for _ in range(200):  # the dispatcher sends in the background: wait up to 10 s
        if not await undelivered():
            return [(notice.threshold_percent, notice.used) for notice in outbox.sent]
        await asyncio.sleep(0.05)
    raise AssertionError("threshold notices still undelivered after 10 s")


async def test_a_change_crossing_both_thresholds_sends_only_the_100_percent_email(
    billing: RunningBilling, outbox: Outbox
) -> None:
    """The third of 3 projects is 80 % and 100 % at once: one email, "3 of the 3", telling
    the limit is reached; replaying every record sends nothing more."""
    for _ in range(2):
        await record(billing, pb.METRIC_PROJECTS, [1, 1, 1])
    assert await sent_once_drained(billing, outbox) == [(100, 3)]
    subject, body = compose_email(outbox.sent[0])
    assert subject == "You have reached your plan's limit of 3 projects"
    assert body.startswith("You are using 3 of the 3 projects your 'free' plan includes")


async def test_a_gauge_crossing_80_percent_again_after_the_100_percent_email_sends_nothing(
    billing: RunningBilling, outbox: Outbox
) -> None:
    """Storage jumps to the whole GiB (the 100 % email), drops to half and rises to 90 %: the
    user already knows more than the 80 % email would say."""
    await record(billing, pb.METRIC_STORAGE_BYTES, [GIB, -GIB // 2, GIB * 2 // 5])
    assert await sent_once_drained(billing, outbox) == [(100, GIB)]


async def test_each_threshold_is_emailed_once_per_period_however_the_gauge_moves(
    billing: RunningBilling, outbox: Outbox
) -> None:
    """Members of one project (limit 5): 4 is the 80 % email, 5 the 100 % one; down to 2 and
    back up through 4 and 5 sends neither again."""
    await record(billing, pb.METRIC_MEMBERS_PER_PROJECT, [1, 1, 1, 1, 1, -3, 2, 1], scope_id="p1")
    assert await sent_once_drained(billing, outbox) == [(80, 4), (100, 5)]
