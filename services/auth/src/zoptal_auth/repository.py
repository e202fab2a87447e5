"""Queries of the Auth service. Every function takes the caller's session (its unit of work)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from zoptal_auth.models import (
    RefreshFamily,
    RefreshToken,
    Revocation,
    ServiceAccount,
    ServiceCredential,
    User,
    role_permissions,
    user_roles,
)

__all__ = [
    "add_revocation",
    "add_user",
    "all_credentials",
    "assign_role",
    "find_refresh_token",
    "live_credentials",
    "mark_refresh_token_spent",
    "purge_expired",
    "replace_password_hash",
    "retire_current_credentials",
    "revocation_page",
    "revocations_since",
    "revoke_credentials",
    "revoke_family",
    "role_exists",
    "roles_and_permissions",
    "service_account_by_client_id",
    "service_account_by_name",
    "service_account_name_taken",
    "user_by_email",
    "user_by_id",
]


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def user_by_id(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def add_user(session: AsyncSession, user: User, roles: Sequence[str]) -> None:
    """Insert the user and their roles; a duplicate email surfaces as IntegrityError on flush."""
    session.add(user)
    await session.flush()
    for role in roles:
        await assign_role(session, user.id, role)


async def replace_password_hash(
    session: AsyncSession, user_id: str, *, old: str, new: str, now: datetime
) -> None:
    """Upgrade a hash made with old parameters, unless the password changed meanwhile."""
    await session.execute(
        update(User)
        .where(User.id == user_id, User.password_hash == old)
        .values(password_hash=new, updated_at=now)
    )


async def role_exists(session: AsyncSession, role: str) -> bool:
    from zoptal_auth.models import Role

    return bool(await session.scalar(select(exists().where(Role.name == role))))


async def assign_role(session: AsyncSession, user_id: str, role: str) -> None:
    """Give ``user_id`` the role; giving it twice is a no-op."""
    already = await session.scalar(
        select(exists().where(user_roles.c.user_id == user_id, user_roles.c.role_name == role))
    )
    if not already:
        await session.execute(user_roles.insert().values(user_id=user_id, role_name=role))


async def roles_and_permissions(session: AsyncSession, user_id: str) -> tuple[list[str], list[str]]:
    """The user's role names and the permissions they grant, both sorted and distinct."""
    roles = (
        await session.scalars(
            select(user_roles.c.role_name)
            .where(user_roles.c.user_id == user_id)
            .order_by(user_roles.c.role_name)
        )
    ).all()
    permissions = (
        await session.scalars(
            select(role_permissions.c.permission_name)
            .join(user_roles, user_roles.c.role_name == role_permissions.c.role_name)
            .where(user_roles.c.user_id == user_id)
            .distinct()
            .order_by(role_permissions.c.permission_name)
        )
    ).all()
    return list(roles), list(permissions)


async def find_refresh_token(
    session: AsyncSession, token_hash: str
) -> tuple[RefreshToken, RefreshFamily] | None:
    row = (
        await session.execute(
            select(RefreshToken, RefreshFamily)
            .join(RefreshFamily, RefreshFamily.id == RefreshToken.family_id)
            .where(RefreshToken.token_hash == token_hash)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def mark_refresh_token_spent(session: AsyncSession, token_id: str, now: datetime) -> bool:
    """Spend the token; False when it was already spent (two racing refreshes: one wins)."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.spent_at.is_(None))
        .values(spent_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_family(
    session: AsyncSession, family_id: str, *, reason: str, now: datetime
) -> bool:
    """Mark the family revoked; False when it already was."""
    result = await session.execute(
        update(RefreshFamily)
        .where(RefreshFamily.id == family_id, RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def add_revocation(
    session: AsyncSession, *, kind: str, value: str, expires_at: datetime, now: datetime
) -> bool:
    """Record a revocation once; False when the same one was already recorded."""
    values = {"kind": kind, "value": value, "expires_at": expires_at, "revoked_at": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Revocation).values(**values).on_conflict_do_nothing()
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revocations_since(
    session: AsyncSession, since: datetime, now: datetime
) -> list[tuple[str, str, datetime]]:
    """(kind, value, expires_at) of revocations made after ``since`` that still matter."""
    rows = await session.execute(
        select(Revocation.kind, Revocation.value, Revocation.expires_at)
        .where(Revocation.revoked_at > since, Revocation.expires_at > now)
        .order_by(Revocation.seq)
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def revocation_page(
    session: AsyncSession,
    *,
    since: datetime,
    after_seq: int,
    now: datetime,
    family_kind: str,
    family_cutoff: datetime,
    limit: int,
) -> list[tuple[int, str, str, datetime, datetime]]:
    """(seq, kind, value, expires_at, revoked_at) revoked after ``since``, past ``after_seq``.

    Only rows that still matter: not expired, and a refresh family (``family_kind``) only if
    revoked after ``family_cutoff`` (its access tokens cannot outlive that). At most ``limit``
    rows, by ``seq``.
    """
    rows = await session.execute(
        select(
            Revocation.seq,
            Revocation.kind,
            Revocation.value,
            Revocation.expires_at,
            Revocation.revoked_at,
        )
        .where(
            Revocation.revoked_at > since,
            Revocation.seq > after_seq,
            Revocation.expires_at > now,
            or_(Revocation.kind != family_kind, Revocation.revoked_at > family_cutoff),
        )
        .order_by(Revocation.seq)
        .limit(limit)
    )
    return [(row[0], row[1], row[2], row[3], row[4]) for row in rows]


async def purge_expired(session: AsyncSession, before: datetime) -> int:
    """Delete revocations and refresh families (with their tokens) that expired before ``before``.

    An expired family's tokens are refused by their own expiry, so nothing is lost.
    """
    revocations = await session.execute(delete(Revocation).where(Revocation.expires_at < before))
    families = await session.execute(delete(RefreshFamily).where(RefreshFamily.expires_at < before))
    return int(revocations.rowcount) + int(families.rowcount)  # type: ignore[attr-defined]


async def service_account_by_client_id(
    session: AsyncSession, client_id: str
) -> ServiceAccount | None:
    return await session.scalar(select(ServiceAccount).where(ServiceAccount.client_id == client_id))


async def service_account_name_taken(session: AsyncSession, name: str) -> bool:
    return bool(await session.scalar(select(exists().where(ServiceAccount.name == name))))


async def service_account_by_name(session: AsyncSession, name: str) -> ServiceAccount | None:
    return await session.scalar(select(ServiceAccount).where(ServiceAccount.name == name))


async def all_credentials(session: AsyncSession, account_id: str) -> list[ServiceCredential]:
    """Every credential the account ever had, revoked and expired ones included."""
    rows = await session.scalars(
        select(ServiceCredential).where(ServiceCredential.account_id == account_id)
    )
    return list(rows)


async def live_credentials(
    session: AsyncSession, account_id: str, now: datetime
) -> list[ServiceCredential]:
    """The account's credentials that may still be used, newest first."""
    rows = await session.scalars(
        select(ServiceCredential)
        .where(
            ServiceCredential.account_id == account_id,
            ServiceCredential.revoked_at.is_(None),
            or_(ServiceCredential.expires_at.is_(None), ServiceCredential.expires_at > now),
        )
        .order_by(ServiceCredential.created_at.desc())
    )
    return list(rows)


async def retire_current_credentials(
    session: AsyncSession, account_id: str, *, until: datetime
) -> int:
    """End every credential of the account by ``until`` at the latest (a rotation's grace
    period): the current one, and an older one whose own grace would last longer."""
    result = await session.execute(
        update(ServiceCredential)
        .where(
            ServiceCredential.account_id == account_id,
            ServiceCredential.revoked_at.is_(None),
            or_(ServiceCredential.expires_at.is_(None), ServiceCredential.expires_at > until),
        )
        .values(expires_at=until)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def revoke_credentials(session: AsyncSession, account_id: str, now: datetime) -> list[str]:
    """Revoke every credential of the account that is not revoked yet; their ids."""
    ids = list(
        await session.scalars(
            select(ServiceCredential.id).where(
                ServiceCredential.account_id == account_id, ServiceCredential.revoked_at.is_(None)
            )
        )
    )
    if ids:
        await session.execute(
            update(ServiceCredential).where(ServiceCredential.id.in_(ids)).values(revoked_at=now)
        )
    return ids
