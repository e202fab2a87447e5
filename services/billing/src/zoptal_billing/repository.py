"""Billing's queries. One ``BillingRepository`` per unit of work (it wraps one session).

Inserts that may race use the dialect's ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite both
have it), so "insert or fetch" needs no retry loop and never surfaces an IntegrityError.

RecordUsage (two for every CreateProject) runs on ``UsageLedger`` instead: table-level Core
statements built once per dialect with bound parameters (``_UsageStatements``), in one
``meshcore.statements`` transaction (on PostgreSQL a held asyncpg connection, no session).
Through a session the same work cost about three times the CPU: the pool checkout, the ORM's
per-statement machinery, and cache keys computed for statements built per call.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy.exc
from meshcore.statements import StatementRunner
from sqlalchemy import Executable, bindparam, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from zoptal_billing.metering import Metric
from zoptal_billing.models import (
    OPEN_CHANGE_STATUSES,
    PlanChangeRow,
    PlanLimitRow,
    PlanRow,
    SubscriptionRow,
    ThresholdNoticeRow,
    UsageRecordRow,
    UsageTotalRow,
)
from zoptal_billing.reads import SUBSCRIPTION_COLUMNS

__all__ = ["BillingRepository", "UsageLedger", "insert_for"]


def insert_for(session: AsyncSession, model: type[Any]) -> Any:
    """An INSERT that supports ``on_conflict_do_*`` on ``session``'s dialect."""
    return _dialect_insert(session.get_bind().dialect.name)(model)


def _dialect_insert(dialect: str) -> Any:
    """The dialect's own ``insert`` (the one with ``on_conflict_do_*``)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


_tables = SubscriptionRow.metadata.tables
_subscriptions = _tables[SubscriptionRow.__tablename__]
_records = _tables[UsageRecordRow.__tablename__]
_totals = _tables[UsageTotalRow.__tablename__]
_notices = _tables[ThresholdNoticeRow.__tablename__]
_TOTAL_KEY = ("user_id", "metric", "scope_id", "period")
_SUBSCRIPTION_COLUMNS = [_subscriptions.c[name] for name in SUBSCRIPTION_COLUMNS]


def _typed_params(table: Any) -> list[Any]:
    """A bound parameter per column of ``table``, typed as the column (so that PostgreSQL
    knows each one's type where nothing else tells it, as in ``INSERT ... SELECT``)."""
    return [bindparam(column.name, type_=column.type) for column in table.c]


@dataclass(frozen=True)
class _UsageStatements:
    """RecordUsage's statements for one dialect (its own INSERT ... ON CONFLICT)."""

    ensure_subscription: Executable
    create_subscription: Executable
    claim_usage_key: Executable
    add_to_total: Executable
    add_notice: Executable


@functools.cache
def _usage_statements(dialect: str) -> _UsageStatements:
    insert = _dialect_insert(dialect)
    upsert_total = insert(_totals)
    # A record made before keys were scoped to callers (caller NULL) holds its key for every
    # caller: the claim inserts nothing then, as it does when the caller's own record exists.
    legacy_record = exists().where(
        _records.c.user_id == bindparam("user_id"),
        _records.c.idempotency_key == bindparam("idempotency_key"),
        _records.c.caller.is_(None),
    )
    return _UsageStatements(
        ensure_subscription=insert(_subscriptions).on_conflict_do_nothing(
            index_elements=["user_id"]
        ),
        create_subscription=insert(_subscriptions)
        .on_conflict_do_nothing(index_elements=["user_id"])
        .returning(*_SUBSCRIPTION_COLUMNS),
        claim_usage_key=insert(_records)
        .from_select(
            list(_records.c.keys()), select(*_typed_params(_records)).where(~legacy_record)
        )
        .on_conflict_do_nothing(index_elements=["user_id", "idempotency_key", "caller"])
        .returning(_records.c.id),
        # The delta added in the statement that returns the new total: no read of the old
        # total first (the subscription lock already serialises a user's writers).
        add_to_total=upsert_total.on_conflict_do_update(
            index_elements=list(_TOTAL_KEY),
            set_={
                "used": _totals.c.used + upsert_total.excluded.used,
                "updated_at": upsert_total.excluded.updated_at,
            },
        ).returning(_totals.c.used),
        add_notice=insert(_notices).on_conflict_do_nothing(
            index_elements=["user_id", "metric", "scope_id", "period", "threshold_percent"]
        ),
    )


_USED = select(_totals.c.used).where(*(_totals.c[name] == bindparam(name) for name in _TOTAL_KEY))
_SUBSCRIPTION = select(SubscriptionRow).where(SubscriptionRow.user_id == bindparam("user_id"))
_LOCKED_SUBSCRIPTION = _SUBSCRIPTION.with_for_update()
_LOCKED_SUBSCRIPTION_COLUMNS = (
    select(*_SUBSCRIPTION_COLUMNS)
    .where(_subscriptions.c.user_id == bindparam("user_id"))
    .with_for_update()
)
_USAGE_RECORD = (
    select(*_records.c)
    .where(
        _records.c.user_id == bindparam("user_id"),
        _records.c.idempotency_key == bindparam("idempotency_key"),
        or_(_records.c.caller == bindparam("caller"), _records.c.caller.is_(None)),
    )
    .limit(1)
)
_HIGHEST_NOTICE = select(func.max(_notices.c.threshold_percent)).where(
    *(_notices.c[name] == bindparam(name) for name in _TOTAL_KEY)
)


class BillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._usage = _usage_statements(session.get_bind().dialect.name)

    def _insert(self, model: type[Any]) -> Any:
        return insert_for(self.session, model)

    # -- plans ----------------------------------------------------------------------------------

    async def plans(self) -> Sequence[PlanRow]:
        result = await self.session.scalars(select(PlanRow).order_by(PlanRow.sort_order))
        return result.all()

    async def plan_limits(self) -> dict[str, dict[Metric, int | None]]:
        """Plan id -> metric -> limit (None: unlimited); metrics unknown to this code skipped."""
        known = {metric.value for metric in Metric}
        limits: dict[str, dict[Metric, int | None]] = {}
        for row in await self.session.scalars(select(PlanLimitRow)):
            if row.metric in known:
                limits.setdefault(row.plan_id, {})[Metric(row.metric)] = row.limit_value
        return limits

    # -- subscriptions --------------------------------------------------------------------------

    async def ensure_subscription(
        self, *, subscription_id: str, user_id: str, plan_id: str, now: datetime
    ) -> None:
        """Create the user's subscription unless one exists (concurrent callers: one wins)."""
        values: dict[str, object] = {"id": subscription_id, "user_id": user_id}
        values.update(plan_id=plan_id, status="active", created_at=now, updated_at=now)
        await self.session.execute(self._usage.ensure_subscription, values)

    async def subscription_of(
        self, user_id: str, *, default_plan_id: str, now: datetime, for_update: bool
    ) -> SubscriptionRow:
        """The user's subscription, created on ``default_plan_id`` on first use."""
        row = await self.subscription(user_id, for_update=for_update)
        if row is not None:
            return row
        await self.ensure_subscription(
            subscription_id=str(uuid.uuid4()), user_id=user_id, plan_id=default_plan_id, now=now
        )
        row = await self.subscription(user_id, for_update=for_update)
        if row is None:  # pragma: no cover - the insert above or a concurrent one created it
            raise RuntimeError(f"subscription of {user_id!r} vanished after being created")
        return row

    async def subscription(
        self, user_id: str, *, for_update: bool = False
    ) -> SubscriptionRow | None:
        """The user's subscription; ``for_update`` serialises writers of this user's usage."""
        query = _LOCKED_SUBSCRIPTION if for_update else _SUBSCRIPTION
        options = {"populate_existing": True}
        result = await self.session.scalars(query, {"user_id": user_id}, execution_options=options)
        return result.one_or_none()

    async def update_subscription(self, user_id: str, **values: Any) -> None:
        """Set columns of the user's subscription (``plan_id``, ``latest_change_id``, ...)."""
        await self.session.execute(
            update(SubscriptionRow).where(SubscriptionRow.user_id == user_id).values(**values)
        )

    # -- plan changes ---------------------------------------------------------------------------

    async def add_change(self, values: Mapping[str, Any]) -> None:
        await self.session.execute(self._insert(PlanChangeRow).values(**values))

    async def change(self, change_id: str) -> PlanChangeRow | None:
        query = (
            select(PlanChangeRow)
            .where(PlanChangeRow.id == change_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).one_or_none()

    async def open_change(self, user_id: str) -> PlanChangeRow | None:
        """The user's change awaiting payment or scheduled (at most one: a partial index)."""
        query = (
            select(PlanChangeRow)
            .where(
                PlanChangeRow.user_id == user_id,
                PlanChangeRow.status.in_(OPEN_CHANGE_STATUSES),
            )
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).one_or_none()

    async def changes_to_settle(self, now: datetime, limit: int) -> Sequence[PlanChangeRow]:
        """Changes awaiting payment, and scheduled ones that are due, oldest first."""
        query = (
            select(PlanChangeRow)
            .where(
                or_(
                    PlanChangeRow.status == "awaiting_payment",
                    (PlanChangeRow.status == "scheduled") & (PlanChangeRow.effective_at <= now),
                )
            )
            .order_by(PlanChangeRow.created_at, PlanChangeRow.id)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def update_change(self, change_id: str, **values: Any) -> None:
        await self.session.execute(
            update(PlanChangeRow).where(PlanChangeRow.id == change_id).values(**values)
        )

    # -- usage ----------------------------------------------------------------------------------

    async def used(self, user_id: str, metric: Metric, scope_id: str, period: str) -> int:
        params = {"user_id": user_id, "metric": metric.value, "scope_id": scope_id}
        return (await self.session.scalar(_USED, {**params, "period": period})) or 0

    async def largest_scope_usage(self, user_id: str, metric: Metric, period: str) -> int:
        """The highest total of a scoped metric across the user's scopes (0 when none)."""
        query = select(func.max(UsageTotalRow.used)).where(
            UsageTotalRow.user_id == user_id,
            UsageTotalRow.metric == metric.value,
            UsageTotalRow.period == period,
        )
        return (await self.session.scalar(query)) or 0

    # -- threshold notices (the outbox) ---------------------------------------------------------

    async def due_notices(self, now: datetime, limit: int) -> Sequence[ThresholdNoticeRow]:
        query = (
            select(ThresholdNoticeRow)
            .where(
                ThresholdNoticeRow.delivered_at.is_(None),
                ThresholdNoticeRow.abandoned_at.is_(None),
                ThresholdNoticeRow.next_attempt_at <= now,
            )
            .order_by(ThresholdNoticeRow.next_attempt_at, ThresholdNoticeRow.id)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def lease_notice(self, notice_id: str, now: datetime, lease_until: datetime) -> bool:
        """Take a due notice for one send attempt; False if another dispatcher took it first.

        The lease (pushing ``next_attempt_at`` out) is what keeps two Billing replicas from
        sending the same notice at once; Notification's idempotency key covers a lease that
        expires mid-send.
        """
        result = await self.session.execute(
            update(ThresholdNoticeRow)
            .where(
                ThresholdNoticeRow.id == notice_id,
                ThresholdNoticeRow.delivered_at.is_(None),
                ThresholdNoticeRow.abandoned_at.is_(None),
                ThresholdNoticeRow.next_attempt_at <= now,
            )
            .values(
                next_attempt_at=lease_until,
                attempts=ThresholdNoticeRow.attempts + 1,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def mark_notice(self, notice_id: str, **values: Any) -> None:
        await self.session.execute(
            update(ThresholdNoticeRow).where(ThresholdNoticeRow.id == notice_id).values(**values)
        )


class UsageLedger:
    """RecordUsage's statements, in one ``meshcore.statements`` transaction: the caller locks the
    user's subscription first, which serialises the read-check-write of their totals. Reads
    that find no subscription make the free one with ``create_subscription``, a statement on
    its own (``Statements``)."""

    def __init__(self, runner: StatementRunner, dialect: str) -> None:
        self._runner = runner
        self._statements = _usage_statements(dialect)

    async def locked_subscription(self, user_id: str) -> Any | None:
        """The user's subscription (``reads.SubscriptionColumns``), locked; None before first
        use."""
        return await self._runner.one(_LOCKED_SUBSCRIPTION_COLUMNS, user_id=user_id)

    async def create_subscription(
        self, *, subscription_id: str, user_id: str, plan_id: str, now: datetime
    ) -> Any | None:
        """Create the user's subscription; None when a concurrent first use created it (lock
        that one with ``locked_subscription``). The new row is this transaction's until it
        commits, so no one else can take it meanwhile."""
        values: dict[str, Any] = {column.name: None for column in _subscriptions.c}
        values.update(id=subscription_id, user_id=user_id, plan_id=plan_id, status="active")
        values.update(created_at=now, updated_at=now)
        return await self._runner.one(self._statements.create_subscription, **values)

    async def usage_record(self, user_id: str, idempotency_key: str, caller: str) -> Any | None:
        """The record ``caller`` made under the key, or one made before keys were scoped
        (``caller`` NULL: it belonged to every caller then, so it still does)."""
        return await self._runner.one(
            _USAGE_RECORD, user_id=user_id, idempotency_key=idempotency_key, caller=caller
        )

    async def claim_usage_key(self, values: Mapping[str, Any]) -> bool:
        """Insert the usage record; False when the caller's (user, key) already has one."""
        return await self._runner.one(self._statements.claim_usage_key, **values) is not None

    async def used(self, user_id: str, metric: Metric, scope_id: str, period: str) -> int:
        row = await self._runner.one(
            _USED, user_id=user_id, metric=metric.value, scope_id=scope_id, period=period
        )
        return 0 if row is None else int(row[0])

    async def add_to_total(
        self, user_id: str, metric: Metric, scope_id: str, period: str, delta: int, now: datetime
    ) -> int | None:
        """Add ``delta`` to the total and return the new total (which may be negative or past
        ``MAX_USAGE``: the caller refuses those, rolling it back); None when the sum does not
        fit the 64-bit column (PostgreSQL refuses it; SQLite would make it a float)."""
        try:
            row = await self._runner.one(
                self._statements.add_to_total,
                user_id=user_id,
                metric=metric.value,
                scope_id=scope_id,
                period=period,
                used=delta,
                updated_at=now,
            )
        except sqlalchemy.exc.DataError:
            return None
        assert row is not None  # an upsert always returns its row
        total = row[0]
        return total if isinstance(total, int) else None

    async def highest_notice(
        self, user_id: str, metric: Metric, scope_id: str, period: str
    ) -> int | None:
        """The highest threshold of ``metric`` queued this period (sent or not), if any."""
        row = await self._runner.one(
            _HIGHEST_NOTICE, user_id=user_id, metric=metric.value, scope_id=scope_id, period=period
        )
        return None if row is None else row[0]

    async def add_notice(self, values: Mapping[str, Any]) -> None:
        """Queue a threshold email unless this threshold was already noticed in this period."""
        row: dict[str, Any] = {column.name: None for column in _notices.c}
        row.update(values)
        await self._runner.execute(self._statements.add_notice, **row)
