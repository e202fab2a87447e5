"""Billing's domain logic: plans, subscriptions, limit checks and idempotent usage metering.

Every RecordUsage runs in one transaction that first locks the user's subscription row, so the
read-check-write of a total is serialised per user (PostgreSQL ``SELECT ... FOR UPDATE``;
SQLite transactions are ``BEGIN IMMEDIATE`` and thus serial anyway). The usage record, the new
total and any threshold notice commit together or not at all: a usage acknowledged to the caller
always has its email queued, and a rejected one leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)

from zoptal_billing.domain import (
    LimitCheck,
    MetricUsage,
    Plan,
    Subscription,
    UsageOutcome,
    UsageRecord,
    UsageRequest,
    as_utc,
)
from zoptal_billing.metering import (
    GAUGE_PERIOD,
    USER_WIDE_METRICS,
    BillingPeriod,
    Metric,
    crossed_thresholds,
    notice_idempotency_key,
)
from zoptal_billing.models import SubscriptionRow, UsageRecordRow
from zoptal_billing.repository import BillingRepository

__all__ = ["DEFAULT_PLAN_ID", "BillingService"]

DEFAULT_PLAN_ID = "free"
"""The plan every user starts on (created on first use)."""
MAX_USAGE = 2**63 - 1
"""The largest running total the usage column (BIGINT) holds."""


class BillingService:
    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_notice_queued: Callable[[], None] | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._on_notice_queued = on_notice_queued
        self._plans_by_id: dict[str, Plan] | None = None

    # -- plans ----------------------------------------------------------------------------------

    async def plans(self) -> list[Plan]:
        """Every plan, cheapest first (cached: plans change only with a migration and restart)."""
        if self._plans_by_id is None:
            async with self._db.session() as session:
                repository = BillingRepository(session)
                rows = await repository.plans()
                limits = await repository.plan_limits()
            self._plans_by_id = {
                row.id: Plan(
                    id=row.id,
                    name=row.name,
                    description=row.description,
                    price_minor_units=row.price_minor_units,
                    currency=row.currency,
                    billing_interval=row.billing_interval,
                    limits=limits.get(row.id, {}),
                )
                for row in rows
            }
        return list(self._plans_by_id.values())

    async def _plans_loaded(self) -> dict[str, Plan]:
        """The plan cache, filled before any transaction opens.

        Loading it inside another session would open a second connection, which on SQLite waits
        for the first one's write lock: a deadlock until the busy timeout.
        """
        await self.plans()
        assert self._plans_by_id is not None
        return self._plans_by_id

    def _plan(self, plan_id: str) -> Plan:
        assert self._plans_by_id is not None, "call _plans_loaded() before a transaction"
        plan = self._plans_by_id.get(plan_id)
        if plan is None:
            raise NotFound("plan", plan_id)
        return plan

    # -- subscriptions --------------------------------------------------------------------------

    async def subscription(self, user_id: str) -> tuple[Subscription, list[MetricUsage]]:
        """The user's subscription (free, created on first use) and its user-wide usage."""
        await self._plans_loaded()
        period = self._period()
        async with self._db.session() as session:
            repository = BillingRepository(session)
            row = await self._subscription_row(repository, user_id, for_update=False)
            subscription = self._to_subscription(row, period)
            usage = [
                await self._usage(repository, subscription, metric, "", period)
                for metric in USER_WIDE_METRICS
            ]
        return subscription, usage

    async def change_subscription(self, user_id: str, plan_id: str) -> Subscription:
        """Move the user to ``plan_id``; refuse a downgrade below current usage."""
        await self._plans_loaded()
        target = self._plan(plan_id)
        period = self._period()
        async with self._db.session() as session:
            repository = BillingRepository(session)
            row = await self._subscription_row(repository, user_id, for_update=True)
            if row.plan_id != target.id:
                await self._refuse_if_over(repository, user_id, target, period)
                await repository.change_plan(user_id, target.id, self._now())
                row = await self._subscription_row(repository, user_id, for_update=False)
            return self._to_subscription(row, period)

    async def _refuse_if_over(
        self, repository: BillingRepository, user_id: str, target: Plan, period: BillingPeriod
    ) -> None:
        for metric in Metric:
            limit = target.limit_for(metric)
            if limit is None:
                continue
            total_period = period.key if metric.is_counter else GAUGE_PERIOD
            if metric.is_scoped:
                used = await repository.largest_scope_usage(user_id, metric, total_period)
            else:
                used = await repository.used(user_id, metric, "", total_period)
            if used > limit:
                raise FailedPrecondition(
                    f"cannot change to plan {target.id!r}: {metric.value} usage {used} "
                    f"exceeds its limit {limit}"
                )

    # -- limits ---------------------------------------------------------------------------------

    async def check_limits(
        self, user_id: str, metric: Metric, quantity: int, scope_id: str = ""
    ) -> LimitCheck:
        """Whether ``quantity`` more fits in the plan now (advisory: not a reservation)."""
        await self._plans_loaded()
        period = self._period()
        async with self._db.session() as session:
            repository = BillingRepository(session)
            row = await self._subscription_row(repository, user_id, for_update=False)
            subscription = self._to_subscription(row, period)
            usage = await self._usage(repository, subscription, metric, scope_id, period)
        allowed = usage.limit is None or usage.used + quantity <= usage.limit
        return LimitCheck(allowed=allowed, usage=usage, plan_id=subscription.plan.id)

    # -- usage ----------------------------------------------------------------------------------

    async def record_usage(self, request: UsageRequest) -> UsageOutcome:
        """Record a usage delta once per idempotency key; replays return the first record."""
        await self._plans_loaded()
        now = self._now()
        period = BillingPeriod.containing(now)
        total_period = period.key if request.metric.is_counter else GAUGE_PERIOD
        notices_queued = False
        async with self._db.session() as session:
            repository = BillingRepository(session)
            row = await self._subscription_row(repository, request.user_id, for_update=True)
            subscription = self._to_subscription(row, period)
            record = UsageRecord(
                id=str(uuid.uuid4()),
                user_id=request.user_id,
                metric=request.metric,
                scope_id=request.scope_id,
                quantity=request.quantity,
                idempotency_key=request.idempotency_key,
                recorded_at=now,
                period=period.key,
            )
            if not await repository.claim_usage_key(_record_values(record)):
                return await self._replay(repository, subscription, request, period)
            limit = subscription.plan.limit_for(request.metric)
            before = await repository.used(
                request.user_id, request.metric, request.scope_id, total_period
            )
            after = before + request.quantity
            if after > MAX_USAGE:
                # The running total is a 64-bit column: a record that would overflow it is the
                # caller's mistake, named as such, and nothing of it is kept.
                raise InvalidArgument(
                    "quantity", f"would take {request.metric.value} usage past {MAX_USAGE}"
                )
            if after < 0:
                raise FailedPrecondition(
                    f"{request.metric.value} usage cannot go below zero (it is {before})"
                )
            over_limit = limit is not None and request.quantity > 0 and after > limit
            if request.enforce_limit and over_limit:
                raise ResourceExhausted(
                    f"plan limit reached: {request.metric.value} limit is {limit} on plan "
                    f"{subscription.plan.id!r} and {before} are in use"
                )
            await repository.set_used(
                request.user_id, request.metric, request.scope_id, total_period, after, now
            )
            for percent in crossed_thresholds(before, after, limit):
                assert limit is not None  # crossed_thresholds returns nothing without one
                await repository.add_notice(
                    {
                        "id": str(uuid.uuid4()),
                        "user_id": request.user_id,
                        "metric": request.metric.value,
                        "scope_id": request.scope_id,
                        "period": period.key,
                        "threshold_percent": percent,
                        "plan_id": subscription.plan.id,
                        "used": after,
                        "limit_value": limit,
                        "idempotency_key": notice_idempotency_key(
                            request.user_id, request.metric, request.scope_id, period.key, percent
                        ),
                        "created_at": now,
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                )
                notices_queued = True
            usage = self._usage_value(subscription, request.metric, request.scope_id, after)
        if notices_queued and self._on_notice_queued is not None:
            self._on_notice_queued()  # only after the commit: the dispatcher must see the rows
        return UsageOutcome(record=record, usage=usage, replayed=False)

    async def _replay(
        self,
        repository: BillingRepository,
        subscription: Subscription,
        request: UsageRequest,
        period: BillingPeriod,
    ) -> UsageOutcome:
        stored = _to_record(await repository.usage_record(request.user_id, request.idempotency_key))
        if not stored.matches(request):
            raise AlreadyExists(
                f"idempotency_key {request.idempotency_key!r} was already used with different "
                f"parameters ({stored.metric.value}, quantity {stored.quantity})"
            )
        usage = await self._usage(repository, subscription, stored.metric, stored.scope_id, period)
        return UsageOutcome(record=stored, usage=usage, replayed=True)

    # -- helpers --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), tz=UTC)

    def _period(self) -> BillingPeriod:
        return BillingPeriod.containing(self._now())

    async def _subscription_row(
        self, repository: BillingRepository, user_id: str, *, for_update: bool
    ) -> SubscriptionRow:
        row = await repository.subscription(user_id, for_update=for_update)
        if row is not None:
            return row
        await repository.ensure_subscription(
            subscription_id=str(uuid.uuid4()),
            user_id=user_id,
            plan_id=DEFAULT_PLAN_ID,
            now=self._now(),
        )
        row = await repository.subscription(user_id, for_update=for_update)
        if row is None:  # pragma: no cover - the insert above or a concurrent one created it
            raise RuntimeError(f"subscription of {user_id!r} vanished after being created")
        return row

    def _to_subscription(self, row: SubscriptionRow, period: BillingPeriod) -> Subscription:
        return Subscription(
            id=row.id,
            user_id=row.user_id,
            plan=self._plan(row.plan_id),
            status=row.status,
            period=period,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
        )

    async def _usage(
        self,
        repository: BillingRepository,
        subscription: Subscription,
        metric: Metric,
        scope_id: str,
        period: BillingPeriod,
    ) -> MetricUsage:
        total_period = period.key if metric.is_counter else GAUGE_PERIOD
        used = await repository.used(subscription.user_id, metric, scope_id, total_period)
        return self._usage_value(subscription, metric, scope_id, used)

    @staticmethod
    def _usage_value(
        subscription: Subscription, metric: Metric, scope_id: str, used: int
    ) -> MetricUsage:
        # Counters are counted in the calendar period; gauges since the subscription began.
        start = subscription.period.start if metric.is_counter else subscription.created_at
        return MetricUsage(
            metric=metric,
            scope_id=scope_id,
            used=used,
            limit=subscription.plan.limit_for(metric),
            period_start=start,
            period_end=subscription.period.end,
        )


def _record_values(record: UsageRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "user_id": record.user_id,
        "idempotency_key": record.idempotency_key,
        "metric": record.metric.value,
        "scope_id": record.scope_id,
        "quantity": record.quantity,
        "period": record.period,
        "recorded_at": record.recorded_at,
    }


def _to_record(row: UsageRecordRow) -> UsageRecord:
    return UsageRecord(
        id=row.id,
        user_id=row.user_id,
        metric=Metric(row.metric),
        scope_id=row.scope_id,
        quantity=row.quantity,
        idempotency_key=row.idempotency_key,
        recorded_at=as_utc(row.recorded_at),
        period=row.period,
    )
