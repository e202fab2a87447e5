"""Project's tables: projects, memberships and the usage outbox towards Billing.

A project or membership that Billing has not yet confirmed is stored in a transitional state
(``creating`` / ``pending``), invisible to every read. It becomes ``active`` only after Billing
recorded its usage, so a row that is visible always has its usage counted; see
docs/adr/0005-project-creation-ordering.md.
"""

from __future__ import annotations

from datetime import datetime

from meshcore.db import new_metadata
from meshcore.idempotency import CALLER_SCOPE_MAX_LENGTH
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "MemberRow", "ProjectRow", "UsageOutboxRow"]


class Base(DeclarativeBase):
    metadata = new_metadata()


class ProjectRow(Base):
    __tablename__ = "projects"
    __table_args__ = (
        # Names are unique per owner, case-insensitively; rows still being created hold theirs.
        UniqueConstraint("owner_id", "name_key"),
        # A client's idempotency key maps to one project per owner and caller (see the proto;
        # NULLs never collide): another caller's key never replays or blocks this one.
        UniqueConstraint("owner_id", "caller", "request_id"),
        Index("ix_projects_state_created_at", "state", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))
    """``name`` case-folded: what uniqueness is decided on."""
    description: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    """``creating`` until Billing recorded the project, then ``active``."""
    version: Mapped[int] = mapped_column(BigInteger)
    member_count: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    caller: Mapped[str] = mapped_column(String(CALLER_SCOPE_MAX_LENGTH), server_default="")
    """``meshcore.idempotency.caller_scope`` of who created it: ``request_id`` is that caller's
    (migration 0002 gave projects created before it their owner, ``user:<owner_id>``)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MemberRow(Base):
    __tablename__ = "project_members"
    __table_args__ = (Index("ix_project_members_user_id_project_id", "user_id", "project_id"),)

    project_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    """``pending`` until Billing counted the seat, then ``active`` (the owner is born active)."""
    seat_id: Mapped[str] = mapped_column(String(36))
    """Names this membership's seat in Billing's idempotency keys (a re-added user gets a new
    one, so the new seat is counted again)."""
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsageOutboxRow(Base):
    """A RecordUsage call Billing must receive, committed with the change that needs it.

    Releases (deleted projects, removed members) and compensations (a create that failed after
    Billing may have counted it) are queued here and delivered in ``id`` order by a background
    task, so they survive Billing being down and Project restarting.
    """

    __tablename__ = "usage_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(32))
    scope_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
