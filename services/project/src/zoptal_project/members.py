"""Project membership: adding, re-roling, removing and listing members.

Adding a member follows the same ordering as creating a project: the membership is committed
``pending`` (invisible), Billing counts the seat with an enforced limit, and only then does the
membership become ``active``. A refused seat deletes the row; an unknown outcome deletes it and
queues a compensation, so seats are never lost nor counted twice. Like every mutation of Project,
an add finishes on the server whatever its client does (``meshcore.completion``); adding a user
whose add is still running waits for it and answers with its outcome.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import sqlalchemy.exc
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.completion import Completions
from meshcore.context import Principal
from meshcore.db import Database
from meshcore.errors import (
    Aborted,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from meshcore.timeutil import utc_now

from zoptal_project.access import Action, Role, ensure_allowed
from zoptal_project.domain import Member, Page
from zoptal_project.ports import BilledMetric, BillingGateway, UserDirectory
from zoptal_project.repository import ACTIVE, PENDING, ProjectRepository
from zoptal_project.service import OWNER_SEAT, wait_in_progress
from zoptal_project.usage_outbox import compensation, queued_usage, seat_key

__all__ = ["MembershipService"]

logger = logging.getLogger(__name__)


class _AddInProgress(Aborted):
    """Another add of this user to this project is running: wait for it, then look again."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"adding {user_id!r} to the project is still in progress")


class MembershipService:
    def __init__(
        self,
        database: Database,
        billing: BillingGateway,
        users: UserDirectory,
        *,
        clock: Clock = SYSTEM_CLOCK,
        completions: Completions | None = None,
        on_usage_queued: Callable[[], None] | None = None,
    ) -> None:
        self._db = database
        self._billing = billing
        self._users = users
        self._clock = clock
        self._completions = completions if completions is not None else Completions()
        self._on_usage_queued = on_usage_queued

    async def add_member(
        self, principal: Principal, project_id: str, user_id: str, role: Role
    ) -> Member:
        """Add ``user_id`` as editor or viewer, or change an existing member's role."""
        key = ("add-member", project_id, user_id)
        waited = 0.0
        while True:
            try:
                return await self._completions.run(
                    self._add(principal, project_id, user_id, role), key=key
                )
            except _AddInProgress:
                waited = await wait_in_progress(self._completions, key, self._clock, waited)

    async def _add(self, principal: Principal, project_id: str, user_id: str, role: Role) -> Member:
        async with self._db.session() as session:
            repository = ProjectRepository(session)
            project = await repository.project(project_id)
            if project is None:
                raise NotFound("project", project_id)
            caller_role = await repository.active_role(project_id, principal.subject)
            ensure_allowed(
                principal,
                project_id,
                Role(caller_role) if caller_role else None,
                Action.MANAGE_MEMBERS,
            )
            if user_id == project.owner_id:
                raise FailedPrecondition("the owner's role cannot be changed")
            owner = project.owner_id
            existing = await repository.member(project_id, user_id)
            if existing is not None and existing.state == ACTIVE:
                if existing.role != role.value:
                    await repository.set_member(
                        project_id, user_id, role=role.value, updated_at=utc_now(self._clock)
                    )
                    existing = await repository.member(project_id, user_id)
                    assert existing is not None
                return Member.of(existing)
        if existing is not None:
            raise _AddInProgress(user_id)
        if not await self._users.user_exists(user_id):
            raise NotFound("user", user_id)
        seat = str(uuid.uuid4())
        await self._insert_pending(project_id, user_id, role, seat)
        await self._charge_seat(owner, project_id, user_id, seat)
        async with self._db.session() as session:
            repository = ProjectRepository(session)
            if not await repository.activate_member(project_id, user_id, seat):
                raise Aborted("the add was abandoned before it completed; retry it")
            await repository.adjust_member_count(project_id, +1)
            added = await repository.member(project_id, user_id)
            assert added is not None
            return Member.of(added)

    async def _insert_pending(self, project_id: str, user_id: str, role: Role, seat: str) -> None:
        now = utc_now(self._clock)
        try:
            async with self._db.session() as session:
                await ProjectRepository(session).add_member(
                    {
                        "project_id": project_id,
                        "user_id": user_id,
                        "role": role.value,
                        "state": PENDING,
                        "seat_id": seat,
                        "joined_at": now,
                        "updated_at": now,
                    }
                )
        except sqlalchemy.exc.IntegrityError:
            # A concurrent add of the same user (wait for it), or the project was deleted.
            raise _AddInProgress(user_id) from None

    async def _charge_seat(self, owner: str, project_id: str, user_id: str, seat: str) -> None:
        try:
            # The owner's seat is queued when the project is created; recording it here too
            # (same key, so it counts once) makes the limit exact even before the queue drains.
            await self._billing.record_usage(
                owner,
                BilledMetric.MEMBERS_PER_PROJECT,
                1,
                idempotency_key=seat_key(project_id, OWNER_SEAT),
                scope_id=project_id,
            )
            await self._billing.record_usage(
                owner,
                BilledMetric.MEMBERS_PER_PROJECT,
                1,
                idempotency_key=seat_key(project_id, seat),
                scope_id=project_id,
                enforce_limit=True,
            )
        except ResourceExhausted as refused:
            await self._discard_pending(project_id, user_id, seat, owner, compensate=False)
            reason = refused.message.removeprefix("plan limit reached: ")
            raise ResourceExhausted(
                f"member limit reached: {reason}", reason=refused.reason, metadata=refused.metadata
            ) from refused
        except Exception as exc:
            await self._discard_pending(project_id, user_id, seat, owner, compensate=True)
            raise Unavailable.of_dependency(
                "billing", "billing is unavailable; the member was not added"
            ) from exc

    async def _discard_pending(
        self, project_id: str, user_id: str, seat: str, owner: str, *, compensate: bool
    ) -> None:
        now = utc_now(self._clock)
        try:
            async with self._db.session() as session:
                repository = ProjectRepository(session)
                removed = await repository.remove_member(
                    project_id, user_id, seat_id=seat, state=PENDING
                )
                if removed and compensate:
                    await repository.enqueue_usage(
                        compensation(
                            now,
                            owner,
                            BilledMetric.MEMBERS_PER_PROJECT,
                            1,
                            seat_key(project_id, seat),
                            project_id,
                        )
                    )
        except Exception:
            logger.warning("could not discard pending member now; the sweeper will")
            return
        if compensate and self._on_usage_queued is not None:
            self._on_usage_queued()

    async def remove_member(self, principal: Principal, project_id: str, user_id: str) -> None:
        """Remove a member (the owner may remove anyone; a member may leave)."""
        await self._completions.run(self._remove(principal, project_id, user_id))

    async def _remove(self, principal: Principal, project_id: str, user_id: str) -> None:
        async with self._db.session() as session:
            repository = ProjectRepository(session)
            project = await repository.project(project_id, for_update=True)
            if project is None:
                raise NotFound("project", project_id)
            if principal.subject != user_id:
                caller_role = await repository.active_role(project_id, principal.subject)
                ensure_allowed(
                    principal,
                    project_id,
                    Role(caller_role) if caller_role else None,
                    Action.MANAGE_MEMBERS,
                )
            if user_id == project.owner_id:
                raise FailedPrecondition("the owner cannot be removed from their project")
            member = await repository.member(project_id, user_id)
            if member is None or member.state != ACTIVE:
                raise NotFound("member", user_id)
            await repository.remove_member(project_id, user_id, seat_id=member.seat_id)
            await repository.adjust_member_count(project_id, -1)
            await repository.enqueue_usage(
                [
                    queued_usage(
                        utc_now(self._clock),
                        project.owner_id,
                        BilledMetric.MEMBERS_PER_PROJECT,
                        -1,
                        f"{seat_key(project_id, member.seat_id)}:release",
                        project_id,
                    )
                ]
            )
        if self._on_usage_queued is not None:
            self._on_usage_queued()

    async def list_members(
        self, principal: Principal, project_id: str, page: int, limit: int
    ) -> Page[Member]:
        async with self._db.session() as session:
            repository = ProjectRepository(session)
            if await repository.project(project_id) is None:
                raise NotFound("project", project_id)
            caller_role = await repository.active_role(project_id, principal.subject)
            ensure_allowed(
                principal, project_id, Role(caller_role) if caller_role else None, Action.READ
            )
            rows, total = await repository.members(
                project_id, offset=(page - 1) * limit, limit=limit
            )
        return Page(
            items=[Member.of(row) for row in rows], total_count=total, page=page, limit=limit
        )
