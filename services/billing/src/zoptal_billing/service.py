"""Billing's domain logic: plans, subscriptions, limit checks and idempotent usage metering.

Every RecordUsage runs in one transaction that first locks the user's subscription row, so the
read-check-write of a total is serialised per user (PostgreSQL ``SELECT ... FOR UPDATE``;
SQLite transactions are ``BEGIN IMMEDIATE`` and thus serial anyway). The usage record, the new
total and any threshold notice commit together or not at all: a usage acknowledged to the caller
always has its email queued, and a rejected one leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar, cast

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.completion import Completions
from meshcore.db import Database
from meshcore.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
)
from meshcore.reasons import Reason
from meshcore.statements import Statements
from meshcore.timeutil import as_utc, utc_now

from zoptal_billing.domain import (
    ChangeRequest,
    LimitCheck,
    MetricUsage,
    Plan,
    PlanChange,
    Subscription,
    UsageOutcome,
    UsageRecord,
    UsageRequest,
)
from zoptal_billing.metering import (
    GAUGE_PERIOD,
    USER_WIDE_METRICS,
    BillingPeriod,
    Metric,
    crossed_threshold,
    notice_idempotency_key,
)
from zoptal_billing.payments import NoPaymentProvider, PaymentProvider
from zoptal_billing.plan_changes import PlanChanges
from zoptal_billing.plans import DEFAULT_PLAN_ID, PlanCatalogue
from zoptal_billing.reads import BillingReads, SubscriptionColumns
from zoptal_billing.repository import BillingRepository, UsageLedger

__all__ = ["MAX_USAGE", "BillingService"]

MAX_USAGE = 2**63 - 1
"""The largest running total the usage column (BIGINT) holds."""

_T = TypeVar("_T")


class BillingService:
    """Plans, subscriptions, limits and usage; plan changes are ``plan_changes.PlanChanges``.

    ``payments`` is the payment provider port (``payments.py``); without one nothing can be
    bought (``NoPaymentProvider``), which is also what production runs until one is configured.
    GetUserSubscription and CheckSubscriptionLimits read through ``reads.BillingReads``, on at
    most ``read_connections`` connections (PostgreSQL), and RecordUsage writes through
    ``repository.UsageLedger``; ``close()`` gives their held connections back.
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_notice_queued: Callable[[], None] | None = None,
        payments: PaymentProvider | None = None,
        change_poll_interval: float = 2.0,
        read_connections: int = 4,
        completions: Completions | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._completions = completions if completions is not None else Completions()
        self._on_notice_queued = on_notice_queued
        self._catalogue = PlanCatalogue(database)
        self._statements = Statements(database, max_connections=read_connections, clock=clock)
        self._reads = BillingReads(self._statements)
        self.changes = PlanChanges(
            database,
            self._catalogue,
            payments or NoPaymentProvider(),
            clock=clock,
            poll_interval=change_poll_interval,
        )

    async def close(self) -> None:
        """Give the held connections back (before the database is disposed)."""
        await self._statements.close()

    # -- plans ----------------------------------------------------------------------------------

    async def plans(self) -> list[Plan]:
        """Every plan, cheapest first."""
        return await self._catalogue.load()

    # -- subscriptions --------------------------------------------------------------------------

    async def subscription(self, user_id: str) -> tuple[Subscription, list[MetricUsage]]:
        """The user's subscription (free, created on first use), its latest plan change and its
        user-wide usage; a change the provider or the clock has decided is settled first.
        Nothing pending (the usual case) costs one read."""
        await self._catalogue.load()
        for attempt in range(2):
            period = self._period()
            view = await self._on_first_use(
                user_id, partial(self._reads.subscription, user_id, period.key)
            )
            row, latest = view.subscription, view.latest_change
            if attempt == 0 and PlanChanges.needs_settling(
                row.change_due_at, latest, utc_now(self._clock)
            ):
                await self.changes.settle_user(user_id)
                continue
            subscription = self._to_subscription(row, period, latest)
            usage = [
                self._usage_value(subscription, metric, "", view.used[metric])
                for metric in USER_WIDE_METRICS
            ]
            return subscription, usage
        raise AssertionError("unreachable: the second attempt never settles")  # pragma: no cover

    async def change_subscription(self, request: ChangeRequest) -> Subscription:
        """Ask for a plan change (billing.proto's rules); the subscription afterwards.

        The change runs to its end even if the caller gives up, as ``record_usage`` does: once
        recorded, an upgrade's payment is submitted whether or not the caller still waits."""
        await self._completions.run(self.changes.request(request))
        subscription, _ = await self.subscription(request.user_id)
        return subscription

    # -- limits ---------------------------------------------------------------------------------

    async def check_limits(
        self, user_id: str, metric: Metric, quantity: int, scope_id: str = ""
    ) -> LimitCheck:
        """Whether ``quantity`` more fits in the plan now (advisory: not a reservation)."""
        await self._catalogue.load()
        period = self._period()
        total_period = period.key if metric.is_counter else GAUGE_PERIOD
        row, used = await self._on_first_use(
            user_id, partial(self._reads.usage, user_id, metric, scope_id, total_period)
        )
        if PlanChanges.needs_settling(row.change_due_at, None, utc_now(self._clock)):
            # A downgrade fell due: put it in force (under the lock) before answering.
            async with self._db.session() as session:
                repository = BillingRepository(session)
                row = await self.changes.locked_subscription(
                    repository, user_id, utc_now(self._clock)
                )
                used = await repository.used(user_id, metric, scope_id, total_period)
        subscription = self._to_subscription(row, period)
        usage = self._usage_value(subscription, metric, scope_id, used)
        allowed = usage.limit is None or usage.used + quantity <= usage.limit
        return LimitCheck(allowed=allowed, usage=usage, plan_id=subscription.plan.id)

    # -- usage ----------------------------------------------------------------------------------

    async def record_usage(self, request: UsageRequest) -> UsageOutcome:
        """Record a usage delta once per (caller, user, key); replays return the first record.

        It runs to its end even if the caller gives up (``meshcore.completion``): a usage that
        reached Billing ends recorded (or refused) whether or not the caller is still waiting,
        so the caller's retry with the same key finds the same outcome."""
        return await self._completions.run(self._record_usage_settling_first(request))

    async def _record_usage_settling_first(self, request: UsageRequest) -> UsageOutcome:
        await self._catalogue.load()
        outcome = await self._record_usage(request)
        if outcome is None:
            # A scheduled plan change fell due: put it in force first (a rare write, through
            # a session as every plan change), then record under the plan now in force.
            async with self._db.session() as session:
                await self.changes.locked_subscription(
                    BillingRepository(session), request.user_id, utc_now(self._clock)
                )
            outcome = await self._record_usage(request, settled=True)
            assert outcome is not None  # settled: a change due is left for the next call
        return outcome

    async def _record_usage(
        self, request: UsageRequest, *, settled: bool = False
    ) -> UsageOutcome | None:
        """One RecordUsage transaction; None, having changed nothing, when a plan change is due
        (unless ``settled``)."""
        now = utc_now(self._clock)
        period = BillingPeriod.containing(now)
        total_period = period.key if request.metric.is_counter else GAUGE_PERIOD
        async with self._statements.transaction() as transaction:
            ledger = UsageLedger(transaction, self._db.dialect)
            row = await self._locked_subscription(ledger, request.user_id, now)
            if not settled and PlanChanges.needs_settling(row.change_due_at, None, now):
                return None
            subscription = self._to_subscription(row, period)
            record = UsageRecord(
                id=str(uuid.uuid4()),
                user_id=request.user_id,
                metric=request.metric,
                scope_id=request.scope_id,
                quantity=request.quantity,
                idempotency_key=request.idempotency_key,
                caller=request.caller,
                recorded_at=now,
                period=period.key,
            )
            if not await ledger.claim_usage_key(_record_values(record)):
                # The key is taken: by this caller's earlier call (a replay), by a concurrent
                # one that claimed it first, or by a record from before keys were scoped.
                stored = await ledger.usage_record(
                    request.user_id, request.idempotency_key, request.caller
                )
                assert stored is not None
                return await self._replay(ledger, subscription, request, stored, period)
            limit = subscription.plan.limit_for(request.metric)
            total = await ledger.add_to_total(
                request.user_id,
                request.metric,
                request.scope_id,
                total_period,
                request.quantity,
                now,
            )
            if total is None or total > MAX_USAGE:
                # The running total is a 64-bit column: a record that would overflow it is the
                # caller's mistake, named as such, and nothing of it is kept.
                raise InvalidArgument(
                    "quantity", f"would take {request.metric.value} usage past {MAX_USAGE}"
                )
            after = total
            before = after - request.quantity
            if after < 0:
                raise FailedPrecondition(
                    f"{request.metric.value} usage cannot go below zero (it is {before})"
                )
            over_limit = limit is not None and request.quantity > 0 and after > limit
            if request.enforce_limit and over_limit:
                raise ResourceExhausted.of_plan_limit(
                    f"plan limit reached: {request.metric.value} limit is {limit} on plan "
                    f"{subscription.plan.id!r} and {before} are in use",
                    metric=request.metric.value,
                    limit=limit,
                    plan_id=subscription.plan.id,
                    used=before,
                )
            notices_queued = await self._queue_notice(
                ledger, request, subscription, period.key, before, after, now
            )
            usage = self._usage_value(subscription, request.metric, request.scope_id, after)
        if notices_queued and self._on_notice_queued is not None:
            self._on_notice_queued()  # only after the commit: the dispatcher must see the rows
        return UsageOutcome(record=record, usage=usage, replayed=False)

    @staticmethod
    async def _locked_subscription(
        ledger: UsageLedger, user_id: str, now: datetime
    ) -> SubscriptionColumns:
        """The user's subscription, locked: the free plan's, created here on first use."""
        row = await ledger.locked_subscription(user_id)
        if row is None:
            row = await ledger.create_subscription(
                subscription_id=str(uuid.uuid4()), user_id=user_id, plan_id=DEFAULT_PLAN_ID, now=now
            )
        if row is None:  # a concurrent first use created it a moment ago
            row = await ledger.locked_subscription(user_id)
        if row is None:  # pragma: no cover - the insert above or a concurrent one created it
            raise RuntimeError(f"subscription of {user_id!r} vanished after being created")
        return cast(SubscriptionColumns, row)

    async def _queue_notice(
        self,
        ledger: UsageLedger,
        request: UsageRequest,
        subscription: Subscription,
        period_key: str,
        before: int,
        after: int,
        now: datetime,
    ) -> bool:
        """Queue the email of the highest threshold this change crosses, unless this period
        already has one for it or a higher threshold (a gauge that went down and back up is
        no news); whether one was queued. The caller holds the subscription lock, which
        serialises this check with the user's other usage."""
        limit = subscription.plan.limit_for(request.metric)
        percent = crossed_threshold(before, after, limit)
        if percent is None:
            return False
        assert limit is not None  # crossed_threshold finds nothing without one
        noticed = await ledger.highest_notice(
            request.user_id, request.metric, request.scope_id, period_key
        )
        if noticed is not None and noticed >= percent:
            return False
        await ledger.add_notice(
            {
                "id": str(uuid.uuid4()),
                "user_id": request.user_id,
                "metric": request.metric.value,
                "scope_id": request.scope_id,
                "period": period_key,
                "threshold_percent": percent,
                "plan_id": subscription.plan.id,
                "used": after,
                "limit_value": limit,
                "idempotency_key": notice_idempotency_key(
                    request.user_id, request.metric, request.scope_id, period_key, percent
                ),
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            }
        )
        return True

    async def _replay(
        self,
        ledger: UsageLedger,
        subscription: Subscription,
        request: UsageRequest,
        row: Any,
        period: BillingPeriod,
    ) -> UsageOutcome:
        stored = _to_record(row)
        if not stored.matches(request):
            raise AlreadyExists(
                f"idempotency_key {request.idempotency_key!r} was already used with different "
                f"parameters ({stored.metric.value}, quantity {stored.quantity})",
                reason=Reason.IDEMPOTENCY_KEY_REUSED,
            )
        usage = await self._usage(ledger, subscription, stored.metric, stored.scope_id, period)
        return UsageOutcome(record=stored, usage=usage, replayed=True)

    # -- helpers --------------------------------------------------------------------------------

    def _period(self) -> BillingPeriod:
        return BillingPeriod.containing(utc_now(self._clock))

    async def _on_first_use(self, user_id: str, read: Callable[[], Awaitable[_T | None]]) -> _T:
        """What ``read`` finds, once the user has a subscription: the free plan's, created
        here if ``read`` found none (concurrent first calls: one insert wins)."""
        found = await read()
        if found is not None:
            return found
        await UsageLedger(self._statements, self._db.dialect).create_subscription(
            subscription_id=str(uuid.uuid4()),  # one INSERT that commits by itself
            user_id=user_id,
            plan_id=DEFAULT_PLAN_ID,
            now=utc_now(self._clock),
        )
        found = await read()
        if found is None:  # pragma: no cover - the insert above or a concurrent one made it
            raise RuntimeError(f"subscription of {user_id!r} vanished after being created")
        return found

    def _to_subscription(
        self,
        row: SubscriptionColumns,
        period: BillingPeriod,
        latest_change: PlanChange | None = None,
    ) -> Subscription:
        return Subscription(
            id=row.id,
            user_id=row.user_id,
            plan=self._catalogue.get(row.plan_id),
            status=row.status,
            period=period,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            latest_change=latest_change,
        )

    async def _usage(
        self,
        ledger: UsageLedger,
        subscription: Subscription,
        metric: Metric,
        scope_id: str,
        period: BillingPeriod,
    ) -> MetricUsage:
        total_period = period.key if metric.is_counter else GAUGE_PERIOD
        used = await ledger.used(subscription.user_id, metric, scope_id, total_period)
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
        "caller": record.caller,
        "metric": record.metric.value,
        "scope_id": record.scope_id,
        "quantity": record.quantity,
        "period": record.period,
        "recorded_at": record.recorded_at,
    }


def _to_record(row: Any) -> UsageRecord:
    """A stored usage record (a row of ``usage_records``)."""
    return UsageRecord(
        id=row.id,
        user_id=row.user_id,
        metric=Metric(row.metric),
        scope_id=row.scope_id,
        quantity=row.quantity,
        idempotency_key=row.idempotency_key,
        caller=row.caller,
        recorded_at=as_utc(row.recorded_at),
        period=row.period,
    )
