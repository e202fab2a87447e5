"""The Auth service's tables. Relationships are not mapped: the repository queries explicitly."""

from __future__ import annotations

from datetime import datetime

from meshcore.db import new_metadata
from meshcore.db_types import UtcDateTime
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Permission",
    "RefreshFamily",
    "RefreshToken",
    "Revocation",
    "Role",
    "ServiceAccount",
    "ServiceCredential",
    "User",
    "role_permissions",
    "user_roles",
]


class Base(DeclarativeBase):
    metadata = new_metadata()


class Role(Base):
    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")


class Permission(Base):
    __tablename__ = "permissions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")


role_permissions = Table(
    "role_permissions",
    Base.metadata,
    Column("role_name", ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True),
    Column("permission_name", ForeignKey("permissions.name", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Stored lower-cased, so the unique constraint makes emails unique case-insensitively.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_name", ForeignKey("roles.name", ondelete="RESTRICT"), primary_key=True),
)


class RefreshFamily(Base):
    """Every refresh token descending from one login; revoked as a whole on reuse."""

    __tablename__ = "refresh_families"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RefreshToken(Base):
    """One opaque refresh token, stored only as its SHA-256 (it is random, so no salt is needed)."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    family_id: Mapped[str] = mapped_column(
        ForeignKey("refresh_families.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    spent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Revocation(Base):
    """A revoked access token (by ``jti``) or refresh family, kept until its tokens expire.

    Replicas poll "what was revoked since I last looked" by ``revoked_at`` (with an overlap, as a
    transaction may commit after a later one), so a row must never be back-dated.
    """

    __tablename__ = "revocations"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoked_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ServiceAccount(Base):
    __tablename__ = "service_accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ServiceCredential(Base):
    """One client secret of a service account, stored only as its hash.

    An account has one live credential, two while a rotation's grace period runs. The id is the
    ``sid`` of every token issued under the credential, so revoking it (a session revocation on
    the feed every verifier polls) cuts off those tokens too, before they expire.
    """

    __tablename__ = "service_credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    """End of a rotated-out credential's grace period; None while it is the current one."""
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
