"""The notifications table: the request, its delivery state, and the outbox/claim columns."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from meshcore.db import new_metadata
from meshcore.db_types import UtcDateTime
from meshcore.idempotency import CALLER_SCOPE_MAX_LENGTH
from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "MAX_LAST_ERROR_LENGTH",
    "MAX_PROVIDER_MESSAGE_ID_LENGTH",
    "Base",
    "Channel",
    "Notification",
    "Status",
]

MAX_LAST_ERROR_LENGTH = 2000
"""Provider replies are cut to this when stored: the proto bounds every listed field."""
MAX_PROVIDER_MESSAGE_ID_LENGTH = 998


class Base(DeclarativeBase):
    metadata = new_metadata()


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


class Status(enum.StrEnum):
    QUEUED = "queued"
    """Stored; waiting for its first attempt or, after a transient failure, for the next."""
    SENDING = "sending"
    """Claimed by a worker that is delivering it now (shown to clients as queued)."""
    SENT = "sent"
    FAILED = "failed"


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # Keys are scoped to the caller that sent them and to the channel (see the proto):
        # another caller's key, or the same key on email and SMS, is a different request.
        UniqueConstraint(
            "caller", "channel", "idempotency_key", name="uq_notifications_caller_channel_key"
        ),
        Index("ix_notifications_user_created", "user_id", "created_at"),
        Index("ix_notifications_dispatch_after", "dispatch_after"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(4096))
    subject: Mapped[str] = mapped_column(String(998), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    template: Mapped[str] = mapped_column(String(64), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    caller: Mapped[str] = mapped_column(String(CALLER_SCOPE_MAX_LENGTH), server_default="")
    """``meshcore.idempotency.caller_scope`` of who sent it; "" for notifications stored before
    callers were recorded (migration 0002), which belong to no caller."""
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the request's content: the same key with other content is refused."""

    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(32), default="")
    provider_message_id: Mapped[str] = mapped_column(
        String(MAX_PROVIDER_MESSAGE_ID_LENGTH), default=""
    )

    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    # The transactional outbox in one column: when the relay must (re)hand this row to the
    # broker if nothing has moved it on by then. NULL once the row is final.
    dispatch_after: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The delivering worker's claim: only the holder of ``claim_token`` may record the outcome.
    claim_token: Mapped[str] = mapped_column(String(32), default="")
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
