"""Project's queries. One ``ProjectRepository`` per unit of work (it wraps one session).

Every read that serves a client filters on ``state = 'active'``: rows still being created, and
memberships Billing has not confirmed, do not exist as far as clients can tell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zoptal_project.models import MemberRow, ProjectRow, UsageOutboxRow

__all__ = ["ACTIVE", "CREATING", "PENDING", "ProjectRepository"]

CREATING = "creating"
PENDING = "pending"
ACTIVE = "active"


class ProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- projects -------------------------------------------------------------------------------

    async def add_project(self, project: Mapping[str, Any], owner: Mapping[str, Any]) -> None:
        """Insert a project and its owner's membership (IntegrityError on a name clash)."""
        await self.session.execute(insert(ProjectRow).values(**project))
        await self.session.execute(insert(MemberRow).values(**owner))
        await self.session.flush()

    async def project(self, project_id: str, *, for_update: bool = False) -> ProjectRow | None:
        query = (
            select(ProjectRow)
            .where(ProjectRow.id == project_id, ProjectRow.state == ACTIVE)
            .execution_options(populate_existing=True)
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def owner_of(self, project_id: str) -> str | None:
        """The owner of a project in any state (None when it does not exist)."""
        return await self.session.scalar(
            select(ProjectRow.owner_id).where(ProjectRow.id == project_id)
        )

    async def project_by_request_id(
        self, owner_id: str, caller: str, request_id: str
    ) -> ProjectRow | None:
        """The project of ``owner_id`` that ``caller`` created with ``request_id`` (any state)."""
        query = select(ProjectRow).where(
            ProjectRow.owner_id == owner_id,
            ProjectRow.caller == caller,
            ProjectRow.request_id == request_id,
        )
        return (await self.session.scalars(query)).one_or_none()

    async def activate_project(self, project_id: str, now: datetime) -> bool:
        """``creating`` -> ``active``; False if the row is gone (a sweeper gave up on it)."""
        result = await self.session.execute(
            update(ProjectRow)
            .where(ProjectRow.id == project_id, ProjectRow.state == CREATING)
            .values(state=ACTIVE, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete_project(self, project_id: str, *, state: str | None = None) -> bool:
        query = delete(ProjectRow).where(ProjectRow.id == project_id)
        if state is not None:
            query = query.where(ProjectRow.state == state)
        result = await self.session.execute(query)
        return bool(getattr(result, "rowcount", 0))

    async def update_project(
        self, project_id: str, version: int, values: Mapping[str, Any]
    ) -> bool:
        """Apply ``values`` and bump the version, only if ``version`` is still current."""
        result = await self.session.execute(
            update(ProjectRow)
            .where(
                ProjectRow.id == project_id,
                ProjectRow.state == ACTIVE,
                ProjectRow.version == version,
            )
            .values(version=ProjectRow.version + 1, **values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def adjust_member_count(self, project_id: str, delta: int) -> None:
        await self.session.execute(
            update(ProjectRow)
            .where(ProjectRow.id == project_id)
            .values(member_count=ProjectRow.member_count + delta)
        )

    async def user_projects(
        self, user_id: str, *, offset: int, limit: int
    ) -> tuple[Sequence[tuple[ProjectRow, str]], int]:
        """A page of the user's projects with their role, newest first, and the total count."""
        joined = (
            select(ProjectRow, MemberRow.role)
            .join(MemberRow, MemberRow.project_id == ProjectRow.id)
            .where(
                MemberRow.user_id == user_id,
                MemberRow.state == ACTIVE,
                ProjectRow.state == ACTIVE,
            )
        )
        total = await self.session.scalar(select(func.count()).select_from(joined.subquery()))
        page = await self.session.execute(
            joined.order_by(ProjectRow.created_at.desc(), ProjectRow.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in page.all()], int(total or 0)

    async def stale_creations(self, before: datetime, limit: int) -> Sequence[ProjectRow]:
        query = (
            select(ProjectRow)
            .where(ProjectRow.state == CREATING, ProjectRow.created_at < before)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    # -- members --------------------------------------------------------------------------------

    async def member(self, project_id: str, user_id: str) -> MemberRow | None:
        query = (
            select(MemberRow)
            .where(MemberRow.project_id == project_id, MemberRow.user_id == user_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).one_or_none()

    async def active_role(self, project_id: str, user_id: str) -> str | None:
        query = select(MemberRow.role).where(
            MemberRow.project_id == project_id,
            MemberRow.user_id == user_id,
            MemberRow.state == ACTIVE,
        )
        return await self.session.scalar(query)

    async def add_member(self, values: Mapping[str, Any]) -> None:
        await self.session.execute(insert(MemberRow).values(**values))
        await self.session.flush()

    async def set_member(self, project_id: str, user_id: str, **values: Any) -> bool:
        result = await self.session.execute(
            update(MemberRow)
            .where(MemberRow.project_id == project_id, MemberRow.user_id == user_id)
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def activate_member(self, project_id: str, user_id: str, seat_id: str) -> bool:
        result = await self.session.execute(
            update(MemberRow)
            .where(
                MemberRow.project_id == project_id,
                MemberRow.user_id == user_id,
                MemberRow.seat_id == seat_id,
                MemberRow.state == PENDING,
            )
            .values(state=ACTIVE)
        )
        return bool(getattr(result, "rowcount", 0))

    async def remove_member(
        self,
        project_id: str,
        user_id: str,
        *,
        seat_id: str | None = None,
        state: str | None = None,
    ) -> bool:
        query = delete(MemberRow).where(
            MemberRow.project_id == project_id, MemberRow.user_id == user_id
        )
        if seat_id is not None:
            query = query.where(MemberRow.seat_id == seat_id)
        if state is not None:
            query = query.where(MemberRow.state == state)
        result = await self.session.execute(query)
        return bool(getattr(result, "rowcount", 0))

    async def members(
        self, project_id: str, *, offset: int, limit: int
    ) -> tuple[Sequence[MemberRow], int]:
        """A page of active members, owner first, then by join time."""
        where = (MemberRow.project_id == project_id, MemberRow.state == ACTIVE)
        total = await self.session.scalar(select(func.count()).where(*where))
        owner_first = (MemberRow.role != "owner").asc()
        query = (
            select(MemberRow)
            .where(*where)
            .order_by(owner_first, MemberRow.joined_at, MemberRow.user_id)
            .offset(offset)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all(), int(total or 0)

    async def pending_members(self, project_id: str) -> Sequence[MemberRow]:
        query = select(MemberRow).where(
            MemberRow.project_id == project_id, MemberRow.state == PENDING
        )
        return (await self.session.scalars(query)).all()

    async def stale_pending_members(self, before: datetime, limit: int) -> Sequence[MemberRow]:
        query = (
            select(MemberRow)
            .where(MemberRow.state == PENDING, MemberRow.updated_at < before)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    # -- usage outbox ---------------------------------------------------------------------------

    async def enqueue_usage(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(UsageOutboxRow), [dict(row) for row in rows])

    async def next_usage(self, limit: int) -> Sequence[UsageOutboxRow]:
        """The oldest queued calls, in the order they must reach Billing."""
        query = select(UsageOutboxRow).order_by(UsageOutboxRow.id).limit(limit)
        return (await self.session.scalars(query)).all()

    async def usage_delivered(self, row_id: int) -> None:
        await self.session.execute(delete(UsageOutboxRow).where(UsageOutboxRow.id == row_id))

    async def usage_failed(
        self, row_id: int, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> None:
        await self.session.execute(
            update(UsageOutboxRow)
            .where(UsageOutboxRow.id == row_id)
            .values(attempts=attempts, next_attempt_at=next_attempt_at, last_error=error)
        )
