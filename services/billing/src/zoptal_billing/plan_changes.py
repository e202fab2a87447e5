"""Plan changes: upgrades paid through the payment provider, downgrades at the period's end.

A change's states (``plan_changes.status``)::

    awaiting_payment -> applied (the provider confirmed) | declined (it did not, or refused)
    scheduled        -> applied (the period ended)      | declined (usage over the limits then)
                     -> canceled (replaced by a later request, or the user kept the plan)
    applied          (complimentary grants and same-price moves are applied at once)

Every transition runs under the user's subscription row lock (``SELECT ... FOR UPDATE``; SQLite
writes are serial anyway) and re-reads the change first, so requests, reads that settle, and the
background pass on every replica may race: exactly one of them moves a change on. Provider calls
run outside any transaction (they are network calls) and are idempotent by the change's payment
key, so submitting a change twice charges once. A change committed as awaiting payment is
submitted even if the client goes away before the provider answers: the background pass picks
up what a request left unsubmitted.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from meshcore.background import PollWaiter
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
)
from meshcore.timeutil import as_utc, utc_now

from zoptal_billing.domain import ChangeRequest, Plan, PlanChange
from zoptal_billing.metering import GAUGE_PERIOD, BillingPeriod, Metric
from zoptal_billing.models import PlanChangeRow, SubscriptionRow
from zoptal_billing.payments import Payment, PaymentProvider, PaymentRequest, PaymentStatus
from zoptal_billing.plans import DEFAULT_PLAN_ID, PlanCatalogue
from zoptal_billing.reasons import BillingReason
from zoptal_billing.repository import BillingRepository

__all__ = ["PlanChanges", "usage_problem"]

logger = logging.getLogger(__name__)

AWAITING_PAYMENT = "awaiting_payment"
SCHEDULED = "scheduled"
APPLIED = "applied"
DECLINED = "declined"
CANCELED = "canceled"

# What a provider says when it refuses the request itself (rather than failing to answer): the
# change is declined with that reason and the caller gets the error.
_REFUSALS = (InvalidArgument, FailedPrecondition, AlreadyExists)


async def usage_problem(
    repository: BillingRepository, user_id: str, target: Plan, period: BillingPeriod
) -> str | None:
    """Why the user's current usage does not fit in ``target`` (None when it does)."""
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
            return (
                f"cannot change to plan {target.id!r}: {metric.value} usage {used} "
                f"exceeds its limit {limit}"
            )
    return None


class PlanChanges:
    def __init__(
        self,
        database: Database,
        catalogue: PlanCatalogue,
        provider: PaymentProvider,
        *,
        clock: Clock = SYSTEM_CLOCK,
        poll_interval: float = 2.0,
        batch_size: int = 100,
    ) -> None:
        self._db = database
        self._catalogue = catalogue
        self._provider = provider
        self._clock = clock
        self._batch_size = batch_size
        self._waiter = PollWaiter(poll_interval, clock=clock)

    # -- requests -------------------------------------------------------------------------------

    async def request(self, request: ChangeRequest) -> None:
        """Record what ChangeSubscription asked for and, for an upgrade, submit the payment."""
        await self._catalogue.load()
        target = self._catalogue.get(request.plan_id)
        if request.complimentary:
            if not request.by_admin:
                raise PermissionDenied("only admins may grant a plan as complimentary")
            if request.payment_token:
                raise InvalidArgument("payment_token", "must be empty for a complimentary grant")
        now = utc_now(self._clock)
        async with self._db.session() as session:
            repository = BillingRepository(session)
            row = await self.locked_subscription(repository, request.user_id, now)
            to_submit = await self._decide(repository, row, target, request, now)
        if to_submit is not None:
            await self._submit(to_submit, raise_refusal=True)

    async def _decide(
        self,
        repository: BillingRepository,
        row: SubscriptionRow,
        target: Plan,
        request: ChangeRequest,
        now: datetime,
    ) -> str | None:
        """Apply the rules of ChangeSubscription (billing.proto); the change id to submit."""
        current = self._catalogue.get(row.plan_id)
        pending = await repository.open_change(row.user_id)
        if pending is not None and pending.status == AWAITING_PAYMENT:
            if pending.to_plan_id == target.id and not request.complimentary:
                return pending.id if pending.payment_id is None else None  # a retry
            raise FailedPrecondition(
                f"a change to plan {pending.to_plan_id!r} is awaiting payment (change "
                f"{pending.id}); wait until it is applied or declined",
                reason=BillingReason.CHANGE_PENDING,
            )
        if target.id == current.id:
            if pending is not None:
                await self._close(repository, pending, CANCELED, f"kept plan {current.id!r}", now)
            return None
        if pending is not None and pending.to_plan_id == target.id and not request.complimentary:
            return None  # the same downgrade is already scheduled
        paid = target.price_minor_units > current.price_minor_units and not request.complimentary
        if paid and not request.payment_token:
            raise InvalidArgument(
                "payment_token",
                f"is required to change to plan {target.id!r}",
                reason=BillingReason.PAYMENT_REQUIRED,
            )
        if not paid and request.payment_token:
            raise InvalidArgument(
                "payment_token", f"must be empty: changing to plan {target.id!r} costs nothing now"
            )
        if not paid:
            period = BillingPeriod.containing(now)
            problem = await usage_problem(repository, row.user_id, target, period)
            if problem is not None:
                raise FailedPrecondition(problem, reason=BillingReason.USAGE_EXCEEDS_PLAN)
        if pending is not None:
            await self._close(
                repository, pending, CANCELED, f"replaced by a request for plan {target.id!r}", now
            )
        change_id = str(uuid.uuid4())
        values: dict[str, object] = {
            "id": change_id,
            "user_id": row.user_id,
            "from_plan_id": current.id,
            "to_plan_id": target.id,
            "requested_by": request.requested_by,
            "complimentary": request.complimentary,
            "amount_minor_units": 0,
            "currency": "",
            "reason": "",
            "created_at": now,
            "updated_at": now,
        }
        if paid:
            values.update(
                status=AWAITING_PAYMENT,
                amount_minor_units=target.price_minor_units,
                currency=target.currency,
                payment_idempotency_key=f"billing.plan-change:{change_id}",
                payment_token=request.payment_token,
            )
        elif target.price_minor_units < current.price_minor_units and not request.complimentary:
            values.update(status=SCHEDULED, effective_at=BillingPeriod.containing(now).end)
        else:
            values.update(status=APPLIED, effective_at=now)
        await repository.add_change(values)
        subscription_values: dict[str, object] = {"latest_change_id": change_id}
        if values["status"] == SCHEDULED:
            subscription_values["change_due_at"] = values["effective_at"]
        elif values["status"] == APPLIED:
            subscription_values.update(plan_id=target.id, updated_at=now, change_due_at=None)
        await repository.update_subscription(row.user_id, **subscription_values)
        if request.complimentary:
            # The audit trail of a grant without payment: who, for whom, what (and the row).
            logger.warning(
                "complimentary plan grant: %s moved user %s from %r to %r (change %s)",
                request.requested_by,
                row.user_id,
                current.id,
                target.id,
                change_id,
            )
        return change_id if paid else None

    # -- settling -------------------------------------------------------------------------------

    async def locked_subscription(
        self, repository: BillingRepository, user_id: str, now: datetime
    ) -> SubscriptionRow:
        """The user's subscription, locked, with a scheduled change that is due put in force."""
        row = await repository.subscription_of(
            user_id, default_plan_id=DEFAULT_PLAN_ID, now=now, for_update=True
        )
        return await self._apply_due(repository, row, now)

    @staticmethod
    def needs_settling(
        change_due_at: datetime | None, latest: PlanChange | None, now: datetime
    ) -> bool:
        """Whether a read of a subscription should settle first: a change due (its
        ``change_due_at`` has come) or a pending payment."""
        due = change_due_at is not None and as_utc(change_due_at) <= now
        return due or (latest is not None and latest.status == AWAITING_PAYMENT)

    async def settle_user(self, user_id: str) -> None:
        """Move the user's open change on, if the provider or the clock has decided it."""
        async with self._db.session() as session:
            change = await BillingRepository(session).open_change(user_id)
        if change is not None:
            await self._settle(change)

    async def settle_pending(self) -> int:
        """One background pass over changes awaiting payment or due; how many it looked at."""
        async with self._db.session() as session:
            changes = await BillingRepository(session).changes_to_settle(
                utc_now(self._clock), self._batch_size
            )
        for change in changes:
            try:
                await self._settle(change)
            except Exception as error:  # one bad change must not stop the others
                logger.warning("plan change %s not settled: %s", change.id, error)
        return len(changes)

    async def run(self) -> None:
        """Settle until cancelled, every ``poll_interval`` (or a full batch at once)."""
        while True:
            try:
                seen = await self.settle_pending()
            except Exception as error:  # the database may be down: keep the loop alive
                logger.warning("plan change pass failed: %s", error)
                seen = 0
            if seen < self._batch_size:
                await self._waiter.wait()

    async def _settle(self, change: PlanChangeRow) -> None:
        if change.status == SCHEDULED:
            async with self._db.session() as session:
                repository = BillingRepository(session)
                await self.locked_subscription(repository, change.user_id, utc_now(self._clock))
            return
        if change.status != AWAITING_PAYMENT:
            return
        if change.payment_id is None:
            await self._submit(change.id, raise_refusal=False)
            return
        try:
            payment = await self._provider.payment(change.payment_id)
        except Exception as error:  # unreachable or confused provider: ask again next pass
            logger.warning("payment of change %s not known yet: %s", change.id, error)
            return
        if payment.status is not PaymentStatus.PENDING:
            await self._resolve(change.id, payment=payment)

    async def _submit(self, change_id: str, *, raise_refusal: bool) -> None:
        """Create the change's payment at the provider, once (idempotent by its key)."""
        async with self._db.session() as session:
            change = await BillingRepository(session).change(change_id)
        if change is None or change.status != AWAITING_PAYMENT or change.payment_id is not None:
            return
        assert change.payment_idempotency_key is not None
        assert change.payment_token is not None
        try:
            payment = await self._provider.create_payment(
                PaymentRequest(
                    idempotency_key=change.payment_idempotency_key,
                    user_id=change.user_id,
                    description=f"Zoptal plan {change.to_plan_id}",
                    amount_minor_units=change.amount_minor_units,
                    currency=change.currency,
                    payment_token=change.payment_token,
                )
            )
        except _REFUSALS as refusal:
            await self._resolve(change_id, refusal=str(refusal)[:500])
            if raise_refusal:
                raise
            return
        except Exception as error:  # the provider did not answer: the background pass retries
            logger.warning("payment of change %s not submitted yet: %s", change_id, error)
            return
        await self._resolve(change_id, payment=payment)

    async def _resolve(
        self, change_id: str, *, payment: Payment | None = None, refusal: str = ""
    ) -> None:
        """Keep the provider's answer under the user's lock: a payment (applied when it
        succeeded, declined when it did not, kept while pending) or a refusal of the request."""
        now = utc_now(self._clock)
        async with self._db.session() as session:
            repository = BillingRepository(session)
            change = await repository.change(change_id)
            if change is None:
                return
            await repository.subscription_of(
                change.user_id, default_plan_id=DEFAULT_PLAN_ID, now=now, for_update=True
            )
            change = await repository.change(change_id)
            if change is None or change.status != AWAITING_PAYMENT:
                return  # another request, read or replica settled it first
            payment_id = change.payment_id if payment is None else payment.id
            await repository.update_change(
                change_id, payment_id=payment_id, payment_token=None, updated_at=now
            )
            if payment is None:
                await self._close(repository, change, DECLINED, refusal, now)
            elif payment.status is PaymentStatus.SUCCEEDED:
                await self._apply(repository, change, now)
            elif payment.status is PaymentStatus.DECLINED:
                reason = payment.decline_reason or "declined by the payment provider"
                await self._close(repository, change, DECLINED, reason[:500], now)

    async def _apply_due(
        self, repository: BillingRepository, row: SubscriptionRow, now: datetime
    ) -> SubscriptionRow:
        """Put a due scheduled change in force (or decline it: usage over the limits)."""
        if row.change_due_at is None or as_utc(row.change_due_at) > now:
            return row
        change = await repository.open_change(row.user_id)
        if change is not None and change.status == SCHEDULED:
            await self._catalogue.load()
            target = self._catalogue.get(change.to_plan_id)
            problem = await usage_problem(
                repository, row.user_id, target, BillingPeriod.containing(now)
            )
            if problem is None:
                await self._apply(repository, change, now)
            else:
                await self._close(repository, change, DECLINED, problem, now)
        else:
            await repository.update_subscription(row.user_id, change_due_at=None)
        refreshed = await repository.subscription(row.user_id, for_update=True)
        assert refreshed is not None
        return refreshed

    @staticmethod
    async def _apply(repository: BillingRepository, change: PlanChangeRow, now: datetime) -> None:
        await repository.update_subscription(
            change.user_id, plan_id=change.to_plan_id, updated_at=now, change_due_at=None
        )
        await repository.update_change(change.id, status=APPLIED, effective_at=now, updated_at=now)
        logger.info(
            "plan change %s applied: user %s from %r to %r",
            change.id,
            change.user_id,
            change.from_plan_id,
            change.to_plan_id,
        )

    @staticmethod
    async def _close(
        repository: BillingRepository,
        change: PlanChangeRow,
        status: str,
        reason: str,
        now: datetime,
    ) -> None:
        await repository.update_change(
            change.id, status=status, reason=reason, effective_at=None, updated_at=now
        )
        if change.status == SCHEDULED:
            await repository.update_subscription(change.user_id, change_due_at=None)
