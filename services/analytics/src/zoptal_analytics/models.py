"""The events table. Times are epoch milliseconds (UTC): see docs/adr on why."""

from __future__ import annotations

from typing import Any

from meshcore.db import new_metadata
from meshcore.idempotency import CALLER_SCOPE_MAX_LENGTH
from sqlalchemy import JSON, BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["PAGE_VIEW", "Base", "Event"]

PAGE_VIEW = "page_view"


class Base(DeclarativeBase):
    metadata = new_metadata()


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # An event id is the client's key, scoped to the caller who sent it (see the proto):
        # another caller's event with the same id is an event of its own.
        UniqueConstraint("caller", "event_id"),
        Index("ix_events_occurred", "occurred_at_ms"),
        Index("ix_events_name_occurred", "name", "occurred_at_ms"),
        Index("ix_events_user_occurred", "user_id", "occurred_at_ms"),
    )

    # SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    caller: Mapped[str] = mapped_column(String(CALLER_SCOPE_MAX_LENGTH), server_default="")
    """``meshcore.idempotency.caller_scope`` of the principal that sent the event; "" for
    events stored before callers were recorded (migration 0002), which belong to no caller."""
    event_id: Mapped[str] = mapped_column(String(128))
    """The client's id (or one the server assigned): the same caller storing it twice is a
    no-op."""
    name: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(64))
    anonymous_id: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(136))
    """``u:<user_id>`` or ``a:<anonymous_id>``: what "unique users" counts, in one column."""
    session_id: Mapped[str] = mapped_column(String(128))
    occurred_at_ms: Mapped[int] = mapped_column(BigInteger)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    page_url: Mapped[str] = mapped_column(String(2048))
    page_title: Mapped[str] = mapped_column(String(512))
    referrer: Mapped[str] = mapped_column(String(2048))
