"""Delivers the threshold notice outbox: "you have used 80 % / 100 % of a limit" emails.

RecordUsage writes a notice row in the usage's own transaction; this dispatcher sends each row
through a ``NoticeSender`` (NotificationService.SendEmail in production) and marks it delivered.
While Notification is down the row waits and is retried with exponential backoff, so the email
arrives once it is back. Every attempt for one notice carries the same idempotency key, so a send
that succeeded but whose answer was lost is deduplicated by Notification, not sent twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from meshcore.background import PollWaiter
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.timeutil import backoff, utc_now

from zoptal_billing.metering import Metric
from zoptal_billing.models import ThresholdNoticeRow
from zoptal_billing.repository import BillingRepository

__all__ = [
    "DispatchResult",
    "NoticeSender",
    "PermanentDeliveryError",
    "ThresholdNotice",
    "ThresholdNoticeDispatcher",
    "compose_email",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThresholdNotice:
    id: str
    user_id: str
    metric: Metric
    scope_id: str
    period: str
    threshold_percent: int
    plan_id: str
    used: int
    limit: int
    idempotency_key: str
    attempts: int


class PermanentDeliveryError(Exception):
    """The notice can never be delivered (for example the user no longer exists): stop trying."""


class NoticeSender(Protocol):
    async def send(self, notice: ThresholdNotice) -> None:
        """Deliver; raise ``PermanentDeliveryError`` to give up, anything else to retry."""
        ...


@dataclass(frozen=True, slots=True)
class DispatchResult:
    delivered: int = 0
    retrying: int = 0
    abandoned: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.abandoned


_METRIC_WORDS = {
    Metric.PROJECTS: "projects",
    Metric.MEMBERS_PER_PROJECT: "members in one project",
    Metric.API_CALLS: "API calls this month",
    Metric.STORAGE_BYTES: "bytes of storage",
}


def compose_email(notice: ThresholdNotice) -> tuple[str, str]:
    """Subject and plain-text body of a threshold email."""
    what = _METRIC_WORDS[notice.metric]
    if notice.threshold_percent >= 100:
        subject = f"You have reached your plan's limit of {notice.limit} {what}"
    else:
        subject = f"You have used {notice.threshold_percent}% of your plan's {what}"
    body = (
        f"You are using {notice.used} of the {notice.limit} {what} your {notice.plan_id!r} "
        f"plan includes (billing period {notice.period}).\n\n"
        "Upgrade your plan to raise the limit."
    )
    return subject, body


class ThresholdNoticeDispatcher:
    def __init__(
        self,
        database: Database,
        sender: NoticeSender,
        *,
        clock: Clock = SYSTEM_CLOCK,
        batch_size: int = 20,
        poll_interval: float = 5.0,
        lease_seconds: float = 60.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 300.0,
        max_attempts: int = 100,
    ) -> None:
        self._db = database
        self._sender = sender
        self._clock = clock
        self._batch_size = batch_size
        self._lease = timedelta(seconds=lease_seconds)
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_attempts = max_attempts
        self._waiter = PollWaiter(poll_interval, clock=clock)

    @property
    def lease_seconds(self) -> float:
        """How long this dispatcher holds a notice it is sending before another may take it."""
        return self._lease.total_seconds()

    def wake(self) -> None:
        """Dispatch now rather than at the next poll (called after a notice is committed)."""
        self._waiter.wake()

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1, 2, 4, ... capped)."""
        return backoff(attempts, self._initial_backoff, self._max_backoff)

    async def dispatch_due(self) -> DispatchResult:
        """One pass: try every notice due now (at most one batch)."""
        now = utc_now(self._clock)
        async with self._db.session() as session:
            due = [
                _to_notice(row)
                for row in await BillingRepository(session).due_notices(now, self._batch_size)
            ]
        delivered = retrying = abandoned = 0
        for notice in due:
            if not await self._lease_notice(notice.id, now):
                continue  # another replica took it
            outcome = await self._attempt(notice)
            delivered += outcome == "delivered"
            retrying += outcome == "retrying"
            abandoned += outcome == "abandoned"
        return DispatchResult(delivered=delivered, retrying=retrying, abandoned=abandoned)

    async def run(self) -> None:
        """Dispatch until cancelled: when woken, and every ``poll_interval`` otherwise."""
        while True:
            try:
                result = await self.dispatch_due()
            except Exception as exc:  # the database may be down: keep the loop alive
                logger.warning("threshold notice dispatch failed: %s", exc)
                result = DispatchResult()
            if result.attempted < self._batch_size:
                await self._waiter.wait()

    async def _lease_notice(self, notice_id: str, now: datetime) -> bool:
        async with self._db.session() as session:
            return await BillingRepository(session).lease_notice(notice_id, now, now + self._lease)

    async def _attempt(self, notice: ThresholdNotice) -> str:
        attempts = notice.attempts + 1
        try:
            await self._sender.send(notice)
        except PermanentDeliveryError as exc:
            logger.error("threshold notice %s abandoned: %s", notice.id, exc)
            await self._mark(
                notice.id, abandoned_at=utc_now(self._clock), last_error=str(exc)[:500]
            )
            return "abandoned"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            if attempts >= self._max_attempts:
                logger.error("threshold notice %s abandoned after %d attempts", notice.id, attempts)
                await self._mark(notice.id, abandoned_at=utc_now(self._clock), last_error=error)
                return "abandoned"
            retry_at = utc_now(self._clock) + timedelta(seconds=self.backoff(attempts))
            logger.info("threshold notice %s not sent (%s); retrying", notice.id, error)
            await self._mark(notice.id, next_attempt_at=retry_at, last_error=error)
            return "retrying"
        await self._mark(notice.id, delivered_at=utc_now(self._clock), last_error=None)
        return "delivered"

    async def _mark(self, notice_id: str, **values: object) -> None:
        async with self._db.session() as session:
            await BillingRepository(session).mark_notice(notice_id, **values)


def _to_notice(row: ThresholdNoticeRow) -> ThresholdNotice:
    return ThresholdNotice(
        id=row.id,
        user_id=row.user_id,
        metric=Metric(row.metric),
        scope_id=row.scope_id,
        period=row.period,
        threshold_percent=row.threshold_percent,
        plan_id=row.plan_id,
        used=row.used,
        limit=row.limit_value,
        idempotency_key=row.idempotency_key,
        attempts=row.attempts,
    )
