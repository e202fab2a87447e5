"""gRPC endpoints of BillingService: validate, check access, call the service, build replies."""

from __future__ import annotations

import grpc
from meshcore.context import require_principal
from meshcore.errors import InvalidArgument
from meshcore.idempotency import caller_scope
from meshcore.timeutil import to_timestamp
from meshcore.validation import Violations
from zoptal.billing.v1 import billing_pb2 as pb, billing_pb2_grpc

from zoptal_billing import validation
from zoptal_billing.access import READ, WRITE, is_admin, require_service, require_user_or
from zoptal_billing.domain import (
    ChangeRequest,
    MetricUsage,
    Plan,
    PlanChange,
    Subscription,
    UsageRecord,
    UsageRequest,
)
from zoptal_billing.metering import Metric
from zoptal_billing.service import BillingService

__all__ = ["BillingServicer"]

Context = grpc.aio.ServicerContext[object, object]

METRIC_TO_PB: dict[Metric, pb.Metric.ValueType] = {
    Metric.PROJECTS: pb.METRIC_PROJECTS,
    Metric.MEMBERS_PER_PROJECT: pb.METRIC_MEMBERS_PER_PROJECT,
    Metric.API_CALLS: pb.METRIC_API_CALLS,
    Metric.STORAGE_BYTES: pb.METRIC_STORAGE_BYTES,
}
_METRIC_FROM_PB = {value: key for key, value in METRIC_TO_PB.items()}
_INTERVAL_TO_PB = {"month": pb.BILLING_INTERVAL_MONTH, "year": pb.BILLING_INTERVAL_YEAR}
_STATUS_TO_PB = {
    "active": pb.SUBSCRIPTION_STATUS_ACTIVE,
    "past_due": pb.SUBSCRIPTION_STATUS_PAST_DUE,
    "canceled": pb.SUBSCRIPTION_STATUS_CANCELED,
}

_CHANGE_STATUS_TO_PB = {
    "awaiting_payment": pb.PLAN_CHANGE_STATUS_AWAITING_PAYMENT,
    "scheduled": pb.PLAN_CHANGE_STATUS_SCHEDULED,
    "applied": pb.PLAN_CHANGE_STATUS_APPLIED,
    "declined": pb.PLAN_CHANGE_STATUS_DECLINED,
    "canceled": pb.PLAN_CHANGE_STATUS_CANCELED,
}


def _metric(value: pb.Metric.ValueType) -> Metric:
    metric = _METRIC_FROM_PB.get(value)
    if metric is None:
        raise InvalidArgument("metric", "must be a known metric other than METRIC_UNSPECIFIED")
    return metric


_PLAN_MESSAGES: dict[str, tuple[Plan, pb.Plan]] = {}


def plan_to_pb(plan: Plan) -> pb.Plan:
    """``plan`` as a message, built once per plan (the catalogue never changes while the
    process runs). Shared: callers put it into replies, which copy it, and never change it."""
    cached = _PLAN_MESSAGES.get(plan.id)
    if cached is not None and cached[0] is plan:
        return cached[1]
    message = _plan_message(plan)
    _PLAN_MESSAGES[plan.id] = (plan, message)
    return message


def _plan_message(plan: Plan) -> pb.Plan:
    return pb.Plan(
        id=plan.id,
        name=plan.name,
        description=plan.description,
        price_minor_units=plan.price_minor_units,
        currency=plan.currency,
        interval=_INTERVAL_TO_PB.get(plan.billing_interval, pb.BILLING_INTERVAL_UNSPECIFIED),
        limits=[
            pb.PlanLimit(
                metric=METRIC_TO_PB[metric],
                limit=plan.limit_for(metric) or 0,
                unlimited=plan.limit_for(metric) is None,
            )
            for metric in Metric
        ],
    )


def usage_to_pb(usage: MetricUsage) -> pb.MetricUsage:
    return pb.MetricUsage(
        metric=METRIC_TO_PB[usage.metric],
        scope_id=usage.scope_id,
        used=usage.used,
        limit=usage.limit or 0,
        unlimited=usage.limit is None,
        period_start=to_timestamp(usage.period_start),
        period_end=to_timestamp(usage.period_end),
    )


def change_to_pb(change: PlanChange) -> pb.PlanChange:
    message = pb.PlanChange(
        id=change.id,
        from_plan_id=change.from_plan_id,
        to_plan_id=change.to_plan_id,
        status=_CHANGE_STATUS_TO_PB.get(change.status, pb.PLAN_CHANGE_STATUS_UNSPECIFIED),
        requested_at=to_timestamp(change.requested_at),
        payment_id=change.payment_id,
        amount_minor_units=change.amount_minor_units,
        currency=change.currency,
        reason=change.reason,
        complimentary=change.complimentary,
    )
    if change.effective_at is not None:
        message.effective_at.CopyFrom(to_timestamp(change.effective_at))
    return message


def subscription_to_pb(subscription: Subscription) -> pb.Subscription:
    message = pb.Subscription(
        id=subscription.id,
        user_id=subscription.user_id,
        plan=plan_to_pb(subscription.plan),
        status=_STATUS_TO_PB.get(subscription.status, pb.SUBSCRIPTION_STATUS_UNSPECIFIED),
        current_period_start=to_timestamp(subscription.period.start),
        current_period_end=to_timestamp(subscription.period.end),
        created_at=to_timestamp(subscription.created_at),
        updated_at=to_timestamp(subscription.updated_at),
    )
    if subscription.latest_change is not None:
        message.latest_change.CopyFrom(change_to_pb(subscription.latest_change))
    return message


def record_to_pb(record: UsageRecord) -> pb.UsageRecord:
    return pb.UsageRecord(
        id=record.id,
        user_id=record.user_id,
        metric=METRIC_TO_PB[record.metric],
        scope_id=record.scope_id,
        quantity=record.quantity,
        idempotency_key=record.idempotency_key,
        recorded_at=to_timestamp(record.recorded_at),
    )


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, service: BillingService) -> None:
        self._service = service

    async def GetUserSubscription(
        self, request: pb.GetUserSubscriptionRequest, context: Context
    ) -> pb.GetUserSubscriptionResponse:
        user_id = validation.identifier("user_id", request.user_id)
        require_user_or(user_id, READ)
        subscription, usage = await self._service.subscription(user_id)
        return pb.GetUserSubscriptionResponse(
            subscription=subscription_to_pb(subscription),
            usage=[usage_to_pb(item) for item in usage],
        )

    async def CheckSubscriptionLimits(
        self, request: pb.CheckSubscriptionLimitsRequest, context: Context
    ) -> pb.CheckSubscriptionLimitsResponse:
        with Violations() as violations:
            with violations.check():
                user_id = validation.identifier("user_id", request.user_id)
            if request.quantity < 0:
                violations.add("quantity", "must be 0 or more")
            with violations.check():
                metric = _metric(request.metric)
                scope_id = validation.scope_for(metric, request.scope_id)  # the metric's rule
        require_user_or(user_id, READ)
        check = await self._service.check_limits(user_id, metric, request.quantity, scope_id)
        return pb.CheckSubscriptionLimitsResponse(
            allowed=check.allowed,
            current_usage=check.usage.used,
            limit=check.usage.limit or 0,
            remaining=check.usage.remaining or 0,
            unlimited=check.usage.limit is None,
            plan_id=check.plan_id,
        )

    async def RecordUsage(
        self, request: pb.RecordUsageRequest, context: Context
    ) -> pb.RecordUsageResponse:
        with Violations() as violations:
            with violations.check():
                user_id = validation.identifier("user_id", request.user_id)
            with violations.check():
                idempotency_key = validation.idempotency_key(request.idempotency_key)
            with violations.check():
                metric = _metric(request.metric)
                # What quantity and scope_id may be depends on the metric: checked once it is.
                with violations.check():
                    quantity = validation.quantity(metric, request.quantity)
                with violations.check():
                    scope_id = validation.scope_for(metric, request.scope_id)
        caller = require_service(WRITE)
        usage_request = UsageRequest(
            user_id=user_id,
            metric=metric,
            quantity=quantity,
            idempotency_key=idempotency_key,
            caller=caller_scope(caller),
            scope_id=scope_id,
            enforce_limit=request.enforce_limit,
        )
        outcome = await self._service.record_usage(usage_request)
        return pb.RecordUsageResponse(
            record=record_to_pb(outcome.record),
            period_usage=usage_to_pb(outcome.usage),
            replayed=outcome.replayed,
        )

    async def GetSubscriptionPlans(
        self, request: pb.GetSubscriptionPlansRequest, context: Context
    ) -> pb.GetSubscriptionPlansResponse:
        require_principal()
        return pb.GetSubscriptionPlansResponse(
            plans=[plan_to_pb(plan) for plan in await self._service.plans()]
        )

    async def ChangeSubscription(
        self, request: pb.ChangeSubscriptionRequest, context: Context
    ) -> pb.ChangeSubscriptionResponse:
        with Violations() as violations:
            with violations.check():
                user_id = validation.identifier("user_id", request.user_id)
            with violations.check():
                plan_id = validation.identifier("plan_id", request.plan_id)
            with violations.check():
                payment_token = validation.payment_token(request.payment_token)
        principal = require_user_or(user_id, WRITE)
        subscription = await self._service.change_subscription(
            ChangeRequest(
                user_id=user_id,
                plan_id=plan_id,
                requested_by=caller_scope(principal),
                payment_token=payment_token,
                complimentary=request.complimentary,
                by_admin=is_admin(principal),
            )
        )
        return pb.ChangeSubscriptionResponse(subscription=subscription_to_pb(subscription))
