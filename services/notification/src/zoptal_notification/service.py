"""Notification domain logic: store a send durably, dispatch it after commit, read history."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy.exc
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.errors import AlreadyExists, InvalidArgument, NotFound
from meshcore.reasons import Reason
from meshcore.timeutil import utc_now

from zoptal_notification.dispatch import Dispatcher
from zoptal_notification.domain import EmailRequest, PushRequest, SendRequest, SmsRequest
from zoptal_notification.models import Channel, Notification, Status
from zoptal_notification.repository import HistoryFilter, NotificationRepository
from zoptal_notification.templates import render_template

__all__ = ["HistoryPage", "NotificationService", "SendResult"]

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class SendResult:
    notification: Notification
    deduplicated: bool


@dataclass(frozen=True)
class HistoryPage:
    notifications: Sequence[Notification]
    total_count: int
    page: int
    limit: int


def fingerprint(request: SendRequest) -> str:
    content = {"channel": request.channel.value, **request.content()}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class NotificationService:
    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        *,
        dispatch_grace: float,
        redispatch_after: float,
        clock: Clock = SYSTEM_CLOCK,
        repository: NotificationRepository | None = None,
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._dispatch_grace = timedelta(seconds=dispatch_grace)
        self._redispatch_after = timedelta(seconds=redispatch_after)
        self._clock = clock
        self._repository = repository or NotificationRepository()

    # -- sending ----------------------------------------------------------------------------

    async def send(self, request: SendRequest, *, caller: str) -> SendResult:
        """Store the notification (QUEUED), commit, then enqueue its delivery.

        ``caller`` (``meshcore.idempotency.caller_scope``) owns the idempotency key: only its
        own earlier send with that key is a repeat; another caller's is never looked at.
        The RPC answers OK once the row is committed: from then on the outbox relay guarantees
        a delivery attempt even if the enqueue below fails or this process dies right now.
        """
        request.validate()
        row = self._new_row(request, caller)
        try:
            async with self._database.session() as session:
                existing = await self._repository.find_by_key(
                    session, row.caller, row.channel, row.idempotency_key
                )
                if existing is not None:
                    return self._repeat(existing, row)
                await self._repository.add(session, row)
        except sqlalchemy.exc.IntegrityError:
            # A concurrent send with the same key committed first: answer with its row.
            async with self._database.session() as session:
                existing = await self._repository.find_by_key(
                    session, row.caller, row.channel, row.idempotency_key
                )
            if existing is None:
                raise
            return self._repeat(existing, row)
        await self._dispatch_after_commit(row)
        return SendResult(row, deduplicated=False)

    def _repeat(self, existing: Notification, attempted: Notification) -> SendResult:
        # ``existing`` is the same caller's: telling it that its own key is taken reveals
        # nothing about anyone else.
        if existing.request_fingerprint != attempted.request_fingerprint:
            raise AlreadyExists(
                f"idempotency key {attempted.idempotency_key!r} was already used for a "
                f"different {attempted.channel} notification",
                reason=Reason.IDEMPOTENCY_KEY_REUSED,
            )
        return SendResult(existing, deduplicated=True)

    async def _dispatch_after_commit(self, row: Notification) -> None:
        assert row.dispatch_after is not None
        try:
            await self._dispatcher.dispatch(row.id)
        except Exception as exc:
            logger.warning(
                "notification %s stored but not enqueued (%s: %s); the outbox relay will",
                row.id,
                type(exc).__name__,
                exc,
            )
            return
        try:
            async with self._database.session() as session:
                await self._repository.mark_dispatched(
                    session,
                    row.id,
                    seen_dispatch_after=row.dispatch_after,
                    next_dispatch_after=utc_now(self._clock) + self._redispatch_after,
                )
        except Exception as exc:
            # Only costs a duplicate task later, which the worker's claim absorbs.
            logger.warning("could not record the dispatch of %s: %s", row.id, exc)

    def _new_row(self, request: SendRequest, caller: str) -> Notification:
        now = utc_now(self._clock)
        row = Notification(
            id=str(uuid.uuid4()),
            caller=caller,
            channel=request.channel.value,
            user_id=request.user_id,
            idempotency_key=request.idempotency_key,
            request_fingerprint=fingerprint(request),
            status=Status.QUEUED.value,
            attempts=0,
            last_error="",
            provider="",
            provider_message_id="",
            claim_token="",
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            dispatch_after=now + self._dispatch_grace,
            template="",
            data={},
            subject="",
            body="",
            body_html="",
        )
        if isinstance(request, EmailRequest):
            row.recipient = request.to
            if request.template:
                rendered = render_template(request.template, request.template_data)
                row.template = request.template
                row.data = dict(request.template_data)
                row.subject, row.body, row.body_html = (
                    rendered.subject,
                    rendered.body_text,
                    rendered.body_html,
                )
            else:
                row.subject, row.body, row.body_html = (
                    request.subject,
                    request.body_text,
                    request.body_html,
                )
        elif isinstance(request, SmsRequest):
            row.recipient, row.body = request.to, request.body
        elif isinstance(request, PushRequest):
            row.recipient, row.subject, row.body = request.device_token, request.title, request.body
            row.data = dict(request.data)
        return row

    # -- reading ----------------------------------------------------------------------------

    async def get(self, notification_id: str) -> Notification:
        if not notification_id or len(notification_id) > 64:
            raise InvalidArgument("notification_id", "required, at most 64 characters")
        async with self._database.session() as session:
            row = await self._repository.get(session, notification_id)
        if row is None:
            raise NotFound("notification", notification_id)
        return row

    async def history(
        self,
        user_id: str,
        *,
        channel: Channel | None = None,
        status: Status | None = None,
        page: int = 0,
        limit: int = 0,
    ) -> HistoryPage:
        if not user_id or len(user_id) > 64:
            raise InvalidArgument("user_id", "required, at most 64 characters")
        if page < 0:
            raise InvalidArgument("page", "must be at least 0")
        if not 0 <= limit <= MAX_PAGE_SIZE:
            raise InvalidArgument("limit", f"must be 0..{MAX_PAGE_SIZE}")
        page = page or 1
        limit = limit or DEFAULT_PAGE_SIZE
        statuses: tuple[str, ...] = ()
        if status is not None:
            # A row a worker is delivering right now is still "queued" to clients.
            statuses = (
                (Status.QUEUED.value, Status.SENDING.value)
                if status in (Status.QUEUED, Status.SENDING)
                else (status.value,)
            )
        where = HistoryFilter(user_id, channel.value if channel else None, statuses)
        async with self._database.session() as session:
            rows, total = await self._repository.history(
                session, where, offset=(page - 1) * limit, limit=limit
            )
        return HistoryPage(rows, total, page, limit)
