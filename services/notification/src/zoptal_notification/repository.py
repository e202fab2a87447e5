"""Queries on the notifications table. Callers own the transaction (``session.begin()``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zoptal_notification.models import (
    MAX_LAST_ERROR_LENGTH,
    MAX_PROVIDER_MESSAGE_ID_LENGTH,
    Notification,
    Status,
)

__all__ = ["DueDispatch", "HistoryFilter", "NotificationRepository"]

_ACTIVE = (Status.QUEUED.value, Status.SENDING.value)


@dataclass(frozen=True)
class HistoryFilter:
    user_id: str
    channel: str | None = None
    statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class DueDispatch:
    notification_id: str
    dispatch_after: datetime


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


class NotificationRepository:
    """Stateless: every method takes the session of the caller's transaction."""

    async def get(self, session: AsyncSession, notification_id: str) -> Notification | None:
        return await session.get(Notification, notification_id, populate_existing=True)

    async def find_by_key(
        self, session: AsyncSession, caller: str, channel: str, idempotency_key: str
    ) -> Notification | None:
        """``caller``'s notification on ``channel`` sent with ``idempotency_key``, if any."""
        query = select(Notification).where(
            Notification.caller == caller,
            Notification.channel == channel,
            Notification.idempotency_key == idempotency_key,
        )
        return (await session.execute(query)).scalar_one_or_none()

    async def add(self, session: AsyncSession, notification: Notification) -> None:
        session.add(notification)
        await session.flush()

    async def history(
        self, session: AsyncSession, where: HistoryFilter, *, offset: int, limit: int
    ) -> tuple[Sequence[Notification], int]:
        conditions = [Notification.user_id == where.user_id]
        if where.channel is not None:
            conditions.append(Notification.channel == where.channel)
        if where.statuses:
            conditions.append(Notification.status.in_(where.statuses))
        total = await session.scalar(
            select(func.count()).select_from(Notification).where(*conditions)
        )
        rows = await session.scalars(
            select(Notification)
            .where(*conditions)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return rows.all(), int(total or 0)

    # -- delivery: claim, then exactly one outcome by the claim holder -------------------------

    async def claim(
        self,
        session: AsyncSession,
        notification_id: str,
        *,
        token: str,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        """Take the row for one delivery attempt if it is due and nobody holds a live claim.

        One UPDATE decides it, so two tasks for the same row (a broker redelivery and an outbox
        re-dispatch, say) can never both win.
        """
        result = await session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                or_(
                    (Notification.status == Status.QUEUED.value)
                    & (Notification.next_attempt_at <= now),
                    (Notification.status == Status.SENDING.value)
                    & (Notification.claimed_until <= now),
                ),
            )
            .values(
                status=Status.SENDING.value,
                attempts=Notification.attempts + 1,
                claim_token=token,
                claimed_until=lease_until,
                # If this worker dies, the relay re-dispatches once the claim has run out.
                dispatch_after=lease_until,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def record_sent(
        self,
        session: AsyncSession,
        notification_id: str,
        *,
        token: str,
        now: datetime,
        provider: str,
        provider_message_id: str,
    ) -> bool:
        return await self._finish(
            session,
            notification_id,
            token,
            status=Status.SENT.value,
            updated_at=now,
            sent_at=now,
            provider=provider,
            provider_message_id=provider_message_id[:MAX_PROVIDER_MESSAGE_ID_LENGTH],
            dispatch_after=None,
            claimed_until=None,
        )

    async def record_failed(
        self, session: AsyncSession, notification_id: str, *, token: str, now: datetime, error: str
    ) -> bool:
        return await self._finish(
            session,
            notification_id,
            token,
            status=Status.FAILED.value,
            updated_at=now,
            failed_at=now,
            last_error=error[:MAX_LAST_ERROR_LENGTH],
            dispatch_after=None,
            claimed_until=None,
        )

    async def record_retry(
        self,
        session: AsyncSession,
        notification_id: str,
        *,
        token: str,
        now: datetime,
        error: str,
        next_attempt_at: datetime,
        dispatch_after: datetime,
    ) -> bool:
        return await self._finish(
            session,
            notification_id,
            token,
            status=Status.QUEUED.value,
            updated_at=now,
            last_error=error[:MAX_LAST_ERROR_LENGTH],
            next_attempt_at=next_attempt_at,
            dispatch_after=dispatch_after,
            claimed_until=None,
        )

    async def _finish(
        self, session: AsyncSession, notification_id: str, token: str, **values: object
    ) -> bool:
        """Record an outcome only while still holding the claim (a taken-over claim loses)."""
        result = await session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status == Status.SENDING.value,
                Notification.claim_token == token,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    # -- the outbox ----------------------------------------------------------------------------

    async def due_for_dispatch(
        self, session: AsyncSession, *, now: datetime, limit: int
    ) -> list[DueDispatch]:
        rows = await session.execute(
            select(Notification.id, Notification.dispatch_after)
            .where(Notification.dispatch_after <= now, Notification.status.in_(_ACTIVE))
            .order_by(Notification.dispatch_after)
            .limit(limit)
        )
        return [DueDispatch(row.id, row.dispatch_after) for row in rows]

    async def mark_dispatched(
        self,
        session: AsyncSession,
        notification_id: str,
        *,
        seen_dispatch_after: datetime,
        next_dispatch_after: datetime,
    ) -> bool:
        """Push the relay deadline out after a successful enqueue.

        Compare-and-set on the value read before the enqueue: if a worker claimed or finished
        the row in between, its own deadline (or NULL) stands.
        """
        result = await session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.dispatch_after == seen_dispatch_after,
                Notification.status.in_(_ACTIVE),
            )
            .values(dispatch_after=next_dispatch_after)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1
