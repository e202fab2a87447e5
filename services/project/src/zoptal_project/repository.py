"""Project's queries. One ``ProjectRepository`` per unit of work (it wraps one session);
``ProjectReads`` answers the hot reads in one statement each, outside any transaction, and
``ProjectCreation`` makes CreateProject's two short transactions (``meshcore.statements``: on
PostgreSQL prepared statements on held asyncpg connections, no SQLAlchemy at run time), with
Core statements built once at import.

Every read that serves a client filters on ``state = 'active'``: rows still being created, and
memberships Billing has not confirmed, do not exist as far as clients can tell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from meshcore.statements import Statements
from sqlalchemy import Row, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zoptal_project.models import MemberRow, ProjectRow, UsageOutboxRow

__all__ = ["ACTIVE", "CREATING", "PENDING", "ProjectCreation", "ProjectReads", "ProjectRepository"]

CREATING = "creating"
PENDING = "pending"
ACTIVE = "active"

Record = Row[*tuple[Any, ...]]
"""A row of a Core statement: its columns by name (``row.name``, ``row.role``)."""

_tables = ProjectRow.metadata.tables
_projects, _members = _tables[ProjectRow.__tablename__], _tables[MemberRow.__tablename__]
_PROJECT_COLUMNS = tuple(
    _projects.c[name]
    for name in ("id", "name", "description", "owner_id", "version", "member_count",
                 "created_at", "updated_at")
)  # fmt: skip
"""What a client sees of a project (``domain.Project``)."""

_PROJECT_WITH_ROLE = (
    select(*_PROJECT_COLUMNS, _members.c.role)
    .select_from(
        _projects.outerjoin(
            _members,
            and_(
                _members.c.project_id == _projects.c.id,
                _members.c.user_id == bindparam("user_id"),
                _members.c.state == ACTIVE,
            ),
        )
    )
    .where(_projects.c.id == bindparam("project_id"), _projects.c.state == ACTIVE)
)
_USER_PROJECTS = (
    select(*_PROJECT_COLUMNS, _members.c.role, func.count().over().label("total"))
    .join(_members, _members.c.project_id == _projects.c.id)
    .where(
        _members.c.user_id == bindparam("user_id"),
        _members.c.state == ACTIVE,
        _projects.c.state == ACTIVE,
    )
    .order_by(_projects.c.created_at.desc(), _projects.c.id.desc())
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_USER_PROJECT_COUNT = (
    select(func.count().label("total"))
    .select_from(_projects.join(_members, _members.c.project_id == _projects.c.id))
    .where(
        _members.c.user_id == bindparam("user_id"),
        _members.c.state == ACTIVE,
        _projects.c.state == ACTIVE,
    )
)


_BY_REQUEST_ID = select(*_PROJECT_COLUMNS, _projects.c.state, _projects.c.name_key,
                        _projects.c.caller).where(
    _projects.c.owner_id == bindparam("owner_id"),
    _projects.c.caller == bindparam("caller"),
    _projects.c.request_id == bindparam("request_id"),
)  # fmt: skip
_ACTIVATE = (
    update(_projects)
    .where(_projects.c.id == bindparam("project_id"), _projects.c.state == CREATING)
    .values(state=ACTIVE, updated_at=bindparam("now"))
    .returning(*_PROJECT_COLUMNS)
)
# Table-level statements (an INSERT of every column), cheaper than the ORM's bulk-insert
# machinery; the outbox's names every column but its generated id, as ``meshcore.statements``
# binds parameters by name (a session takes it with many rows at once too).
_INSERT_PROJECT, _INSERT_MEMBER = insert(_projects), insert(_members)
_outbox = _tables[UsageOutboxRow.__tablename__]
_INSERT_USAGE = insert(_outbox).values(
    {column.name: bindparam(column.name) for column in _outbox.c if column.name != "id"}
)


class ProjectReads:
    """The reads GetProject, CheckAccess and ListUserProjects make, one statement each."""

    def __init__(self, reads: Statements) -> None:
        self._reads = reads

    async def project_with_role(self, project_id: str, user_id: str) -> Record | None:
        """The active project (``_PROJECT_COLUMNS``) and ``user_id``'s active role in it
        (``role``, None when not a member); None when there is no such active project."""
        return await self._reads.one(_PROJECT_WITH_ROLE, project_id=project_id, user_id=user_id)

    async def user_projects(
        self, user_id: str, *, offset: int, limit: int
    ) -> tuple[Sequence[Record], int]:
        """A page of the user's projects with their ``role``, newest first, and the total."""
        page = await self._reads.all(_USER_PROJECTS, user_id=user_id, offset=offset, limit=limit)
        if page:
            return page, int(page[0].total)
        if offset == 0:
            return page, 0
        # A page past the end: the window had no row to count on.
        total = await self._reads.one(_USER_PROJECT_COUNT, user_id=user_id)
        return page, int(total.total if total is not None else 0)

    async def by_request_id(self, owner_id: str, caller: str, request_id: str) -> Record | None:
        """See ``ProjectRepository.project_by_request_id``."""
        return await self._reads.one(
            _BY_REQUEST_ID, owner_id=owner_id, caller=caller, request_id=request_id
        )


class ProjectCreation:
    """CreateProject's writes: the ``creating`` row with its owner's membership, then (Billing
    having charged it) its activation with the owner's seat queued for Billing."""

    def __init__(self, statements: Statements) -> None:
        self._statements = statements

    async def add_project(self, project: Mapping[str, Any], owner: Mapping[str, Any]) -> None:
        """Insert a project and its owner's membership (IntegrityError on a name clash)."""
        async with self._statements.transaction() as transaction:
            await transaction.execute(_INSERT_PROJECT, **project)
            await transaction.execute(_INSERT_MEMBER, **owner)

    async def activate(
        self, project_id: str, now: datetime, usage: Mapping[str, Any]
    ) -> Record | None:
        """``creating`` -> ``active`` with ``usage`` queued in the outbox, in one transaction:
        the project as clients now see it, or None (nothing done) if the row is gone (a sweeper
        gave up on it)."""
        async with self._statements.transaction() as transaction:
            row = await transaction.one(_ACTIVATE, project_id=project_id, now=now)
            if row is not None:
                await transaction.execute(_INSERT_USAGE, **usage)
            return row


class ProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- projects -------------------------------------------------------------------------------

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
    ) -> Record | None:
        """The project of ``owner_id`` that ``caller`` created with ``request_id`` (any state):
        the client's columns, ``state``, ``name_key`` and ``caller``."""
        params = {"owner_id": owner_id, "caller": caller, "request_id": request_id}
        return (await self.session.execute(_BY_REQUEST_ID, params)).first()

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
            await self.session.execute(_INSERT_USAGE, [dict(row) for row in rows])

    async def next_usage(self, limit: int) -> Sequence[UsageOutboxRow]:
        """The oldest queued calls, in the order they must reach Billing."""
        query = select(UsageOutboxRow).order_by(UsageOutboxRow.id).limit(limit)
        return (await self.session.scalars(query)).all()

    async def usage_done(self, row_ids: Sequence[int]) -> None:
        """Remove rows that were delivered (or refused for good)."""
        await self.session.execute(delete(UsageOutboxRow).where(UsageOutboxRow.id.in_(row_ids)))

    async def usage_failed(
        self, row_id: int, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> None:
        await self.session.execute(
            update(UsageOutboxRow)
            .where(UsageOutboxRow.id == row_id)
            .values(attempts=attempts, next_attempt_at=next_attempt_at, last_error=error)
        )
