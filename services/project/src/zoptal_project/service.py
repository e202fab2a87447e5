"""Project's domain logic: creating, reading, updating and deleting projects.

CreateProject orders its steps so that a project is visible only once Billing counted it, and a
usage Billing counted for a project that never became visible is always cancelled (see
docs/adr/0005-project-creation-ordering.md):

1. Billing.CheckSubscriptionLimits: fail fast (RESOURCE_EXHAUSTED, or UNAVAILABLE with nothing
   written when Billing is down);
2. commit the project in state ``creating`` (invisible, but holding its name and request id);
3. Billing.RecordUsage(+1, key = project id, enforce_limit): the exact, atomic limit check;
4. commit ``active`` together with the owner's member seat in the usage outbox.

If step 3 is refused, the row is deleted. If its outcome is unknown (Billing unreachable, timed
out), the row is deleted and a compensation is queued in the same transaction. If Project dies
between 2 and 4, the outbox dispatcher's sweeper does the same later.

Every mutation runs through ``meshcore.completion.Completions``: it finishes on the server even
when its client's deadline passes or the client cancels, so a timed-out create never leaves a
row that holds its name, blocks a retry or is counted by Billing. A retry with the same
``request_id`` while the first attempt still runs waits for it (as long as the retry's own
deadline allows) and returns its project.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy.exc
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.completion import Completions
from meshcore.context import Principal
from meshcore.db import Database
from meshcore.errors import (
    Aborted,
    AlreadyExists,
    InvalidArgument,
    MeshError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from meshcore.idempotency import caller_scope
from meshcore.reasons import Reason
from meshcore.resilience.retry import is_unsent
from meshcore.statements import Statements
from meshcore.timeutil import utc_now

from zoptal_project.access import (
    Action,
    Role,
    ensure_allowed,
    is_admin,
    may_read_any,
    role_allows,
)
from zoptal_project.domain import Page, Project
from zoptal_project.models import MemberRow, ProjectRow
from zoptal_project.ports import AnalyticsGateway, BilledMetric, BillingGateway
from zoptal_project.reasons import ProjectReason
from zoptal_project.repository import (
    ACTIVE,
    CREATING,
    ProjectCreation,
    ProjectReads,
    ProjectRepository,
)
from zoptal_project.usage_outbox import compensation, queued_usage, seat_key
from zoptal_project.validation import name_key

__all__ = ["CREATE_PERMISSION", "IN_PROGRESS_POLL_SECONDS", "ProjectService", "wait_in_progress"]

logger = logging.getLogger(__name__)

CREATE_PERMISSION = "project:create"
OWNER_SEAT = "owner"
"""The seat id of a project's owner (members get a random one)."""
IN_PROGRESS_POLL_SECONDS = 0.05
"""How often a retry looks again at an attempt running in another replica."""
IN_PROGRESS_WAIT_SECONDS = 10.0
"""How long a retry without a deadline of its own waits for another replica's attempt: far
longer than an attempt takes (its Billing call is bounded by ``BILLING_TIMEOUT_MS``); past it, the
attempt's replica died mid-way and the sweeper will undo it."""


async def wait_in_progress(
    completions: Completions, key: object, clock: Clock, waited: float
) -> float:
    """Wait for the attempt running under ``key`` (in this process) or a moment (in another);
    the time waited so far. UNAVAILABLE, retryable, once waiting is pointless."""
    in_flight = completions.running(key)
    if in_flight is not None and in_flight is not asyncio.current_task():
        with contextlib.suppress(Exception):
            await asyncio.shield(in_flight)  # its outcome is read back from the database
        return waited
    if waited >= IN_PROGRESS_WAIT_SECONDS:
        raise Unavailable(
            "an earlier attempt of this request is still in progress", retry_after=1.0
        )
    await clock.sleep(IN_PROGRESS_POLL_SECONDS)
    return waited + IN_PROGRESS_POLL_SECONDS


class ProjectService:
    def __init__(
        self,
        database: Database,
        billing: BillingGateway,
        analytics: AnalyticsGateway,
        *,
        clock: Clock = SYSTEM_CLOCK,
        completions: Completions | None = None,
        on_usage_queued: Callable[[], None] | None = None,
        on_create_abandoned: Callable[[str, str], None] | None = None,
        read_connections: int = 4,
    ) -> None:
        self._db = database
        self._statements = Statements(database, max_connections=read_connections, clock=clock)
        self._reads = ProjectReads(self._statements)
        self._creation = ProjectCreation(self._statements)
        self._billing = billing
        self._analytics = analytics
        self._clock = clock
        self._completions = completions if completions is not None else Completions()
        self._on_usage_queued = on_usage_queued
        self._on_create_abandoned = on_create_abandoned

    async def close(self) -> None:
        """Give the held connections back (before the database is disposed)."""
        await self._statements.close()

    # -- create ---------------------------------------------------------------------------------

    async def create_project(
        self,
        principal: Principal,
        *,
        name: str,
        description: str,
        owner_id: str | None,
        request_id: str | None,
    ) -> Project:
        owner = self._owner_for(principal, owner_id)
        # ``request_id`` is the caller's: only its own earlier create with it is a replay.
        caller = caller_scope(principal)
        if request_id is None:
            return await self._completions.run(self._create(owner, caller, name, description, None))
        key = ("create", owner, caller, request_id)
        replay = await self._replay(owner, caller, request_id, name)
        if replay is not None:
            return replay
        return await self._completions.run(
            self._create(owner, caller, name, description, request_id), key=key
        )

    async def _create(
        self, owner: str, caller: str, name: str, description: str, request_id: str | None
    ) -> Project:
        check = await self._billing.check_limit(owner, BilledMetric.PROJECTS, 1)
        if not check.allowed:
            raise ResourceExhausted.of_plan_limit(
                _project_limit_message(check.plan_id, check.limit, check.used),
                metric=BilledMetric.PROJECTS.value,
                limit=check.limit,
                plan_id=check.plan_id,
                used=check.used,
            )
        project_id = str(uuid.uuid4())
        now = utc_now(self._clock)
        try:
            await self._creation.add_project(
                {
                    "id": project_id,
                    "owner_id": owner,
                    "name": name,
                    "name_key": name_key(name),
                    "description": description,
                    "state": CREATING,
                    "version": 1,
                    "member_count": 1,
                    "request_id": request_id,
                    "caller": caller,
                    "created_at": now,
                    "updated_at": now,
                },
                {
                    "project_id": project_id,
                    "user_id": owner,
                    "role": Role.OWNER.value,
                    "state": ACTIVE,
                    "seat_id": OWNER_SEAT,
                    "joined_at": now,
                    "updated_at": now,
                },
            )
        except sqlalchemy.exc.IntegrityError:
            return await self._on_insert_conflict(owner, caller, request_id, name)
        await self._charge_project(owner, project_id)
        try:
            project = await self._activate(owner, project_id, now)
        except Unavailable:
            # Charged but not activated (the database went away): undo it, now or once the
            # database is back, so a retry of this request is not stuck behind a stale row.
            await self._discard_creating(project_id, owner, compensate=True)
            raise
        self._usage_queued()
        self._track(
            "project.created",
            owner,
            {"project_id": project_id},
            event_id=f"project.created:{project_id}",
        )
        return project

    async def _activate(self, owner: str, project_id: str, now: datetime) -> Project:
        # The owner's seat counts towards the members-per-project limit; it is queued rather
        # than called so that creating a project costs one Billing write, not two.
        seat = queued_usage(
            now,
            owner,
            BilledMetric.MEMBERS_PER_PROJECT,
            1,
            seat_key(project_id, OWNER_SEAT),
            project_id,
        )
        row = await self._creation.activate(project_id, utc_now(self._clock), seat)
        if row is None:
            raise Aborted("the create was abandoned before it completed; retry it")
        return Project.of(row)

    async def _charge_project(self, owner: str, project_id: str) -> None:
        """RecordUsage for the new project; on failure leave nothing visible behind."""
        try:
            await self._billing.record_usage(
                owner,
                BilledMetric.PROJECTS,
                1,
                idempotency_key=project_id,
                enforce_limit=True,
            )
        except ResourceExhausted as refused:
            # Definitive: Billing recorded nothing, so the row just goes.
            await self._discard_creating(project_id, owner, compensate=False)
            facts = refused.metadata or {}
            if {"plan_id", "limit", "used"} <= facts.keys():
                message = _project_limit_message(facts["plan_id"], facts["limit"], facts["used"])
            else:
                message = "project limit reached: " + refused.message.removeprefix(
                    "plan limit reached: "
                )
            raise ResourceExhausted(
                message, reason=refused.reason, metadata=refused.metadata
            ) from refused
        except BaseException as exc:
            # Unknown outcome: Billing may have counted it. Delete the row and cancel the usage,
            # unless the call provably never left (the breaker refused it).
            unsent = is_unsent(exc.__cause__ or exc)  # the port's contract (ports.py)
            await self._discard_creating(project_id, owner, compensate=not unsent)
            if isinstance(exc, MeshError) and not isinstance(exc, Unavailable):
                logger.error("Billing refused RecordUsage for %s: %s", project_id, exc)
            if isinstance(exc, Exception):
                raise Unavailable.of_dependency(
                    "billing", "billing is unavailable; the project was not created"
                ) from exc
            raise

    async def _discard_creating(self, project_id: str, owner: str, *, compensate: bool) -> None:
        now = utc_now(self._clock)
        try:
            async with self._db.session() as session:
                repository = ProjectRepository(session)
                if await repository.delete_project(project_id, state=CREATING) and compensate:
                    await repository.enqueue_usage(
                        compensation(now, owner, BilledMetric.PROJECTS, 1, project_id)
                    )
        except Exception:
            # The database is away too: the row stays ``creating`` (invisible) until the outbox
            # discards it once the database answers (or, should this process die, the sweeper).
            logger.warning(
                "could not discard project %s now; retrying when the database is back", project_id
            )
            if self._on_create_abandoned is not None:
                self._on_create_abandoned(project_id, owner)
            return
        if compensate:
            self._usage_queued()

    async def _replay(self, owner: str, caller: str, request_id: str, name: str) -> Project | None:
        """The project an earlier attempt of this request created; None when there is none
        (any more). An attempt still running is waited for."""
        key = ("create", owner, caller, request_id)
        waited = 0.0
        while True:
            row = await self._reads.by_request_id(owner, caller, request_id)
            if row is None:
                if self._completions.running(key) in (None, asyncio.current_task()):
                    return None
            elif row.name_key != name_key(name):
                raise AlreadyExists(
                    f"request_id {request_id!r} was already used to create another project",
                    reason=Reason.IDEMPOTENCY_KEY_REUSED,
                )
            elif row.state == ACTIVE:
                return Project.of(row)
            waited = await wait_in_progress(self._completions, key, self._clock, waited)

    async def _on_insert_conflict(
        self, owner: str, caller: str, request_id: str | None, name: str
    ) -> Project:
        if request_id is not None:
            replay = await self._replay(owner, caller, request_id, name)
            if replay is not None:
                return replay  # a concurrent retry of this very request won the race
        raise AlreadyExists(
            f"you already have a project named {name!r}", reason=ProjectReason.NAME_TAKEN
        )

    def _owner_for(self, principal: Principal, owner_id: str | None) -> str:
        principal.require_permission(CREATE_PERMISSION)
        if not owner_id or owner_id == principal.subject:
            if principal.is_service:
                raise InvalidArgument("owner_id", "is required when a service creates a project")
            return principal.subject
        if principal.is_service or is_admin(principal):
            return owner_id
        raise PermissionDenied("only admins and services may create projects for another user")

    # -- read -----------------------------------------------------------------------------------

    async def get_project(
        self, principal: Principal, project_id: str
    ) -> tuple[Project, Role | None]:
        row = await self._reads.project_with_role(project_id, principal.subject)
        if row is None:
            raise NotFound("project", project_id)
        role = _role_of(row.role)
        ensure_allowed(principal, project_id, role, Action.READ)
        return Project.of(row), role

    async def list_user_projects(
        self, principal: Principal, user_id: str | None, page: int, limit: int
    ) -> Page[tuple[Project, Role]]:
        user = user_id or principal.subject
        if user_id and user_id != principal.subject and not may_read_any(principal):
            raise PermissionDenied("you may list only your own projects")
        if principal.is_service and not user_id:
            raise InvalidArgument("user_id", "is required when a service lists projects")
        rows, total = await self._reads.user_projects(user, offset=(page - 1) * limit, limit=limit)
        items = [(Project.of(row), Role(row.role)) for row in rows]
        return Page(items=items, total_count=total, page=page, limit=limit)

    async def check_access(
        self, principal: Principal, user_id: str, project_id: str, action: Action
    ) -> tuple[bool, Role | None]:
        privileged = may_read_any(principal)
        if not privileged and user_id != principal.subject:
            raise PermissionDenied("you may check only your own access")
        row = await self._reads.project_with_role(project_id, user_id)
        role = None if row is None else _role_of(row.role)
        # A user asking about a project they are not in learns nothing: it is NOT_FOUND.
        if row is None or (role is None and not privileged):
            raise NotFound("project", project_id)
        return role_allows(role, action), role

    # -- update and delete ----------------------------------------------------------------------

    async def update_project(
        self,
        principal: Principal,
        project_id: str,
        version: int,
        *,
        name: str | None,
        description: str | None,
    ) -> Project:
        return await self._completions.run(
            self._update(principal, project_id, version, name=name, description=description)
        )

    async def _update(
        self,
        principal: Principal,
        project_id: str,
        version: int,
        *,
        name: str | None,
        description: str | None,
    ) -> Project:
        values: dict[str, object] = {"updated_at": utc_now(self._clock)}
        if name is not None:
            values.update(name=name, name_key=name_key(name))
        if description is not None:
            values["description"] = description
        try:
            async with self._db.session() as session:
                repository = ProjectRepository(session)
                row = await repository.project(project_id)
                if row is None:
                    raise NotFound("project", project_id)
                role = await self._role(repository, project_id, principal.subject)
                ensure_allowed(principal, project_id, role, Action.UPDATE)
                if not await repository.update_project(project_id, version, values):
                    raise Aborted(
                        f"project {project_id!r} changed since version {version}; re-read it",
                        reason=ProjectReason.VERSION_CONFLICT,
                    )
                updated = await repository.project(project_id)
                assert updated is not None
                return Project.of(updated)
        except sqlalchemy.exc.IntegrityError:
            raise AlreadyExists(
                f"you already have a project named {name!r}", reason=ProjectReason.NAME_TAKEN
            ) from None

    async def delete_project(self, principal: Principal, project_id: str, version: int) -> None:
        """Delete the project and queue the release of its usage (project and member seats)."""
        await self._completions.run(self._delete(principal, project_id, version))

    async def _delete(self, principal: Principal, project_id: str, version: int) -> None:
        now = utc_now(self._clock)
        async with self._db.session() as session:
            repository = ProjectRepository(session)
            row = await repository.project(project_id, for_update=True)
            if row is None:
                raise NotFound("project", project_id)
            role = await self._role(repository, project_id, principal.subject)
            ensure_allowed(principal, project_id, role, Action.DELETE)
            if version and row.version != version:
                raise Aborted(
                    f"project {project_id!r} changed since version {version}",
                    reason=ProjectReason.VERSION_CONFLICT,
                )
            releases = _release_rows(now, row, await repository.pending_members(project_id))
            await repository.delete_project(project_id, state=ACTIVE)
            await repository.enqueue_usage(releases)
        self._usage_queued()

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    async def _role(repository: ProjectRepository, project_id: str, user_id: str) -> Role | None:
        return _role_of(await repository.active_role(project_id, user_id))

    def _usage_queued(self) -> None:
        if self._on_usage_queued is not None:
            self._on_usage_queued()

    def _track(self, name: str, user_id: str, properties: dict[str, str], *, event_id: str) -> None:
        """Send an analytics event off the critical path: its failure never fails the RPC."""

        async def send() -> None:
            try:
                await self._analytics.track_event(user_id, name, properties, event_id=event_id)
            except Exception as exc:
                logger.warning("analytics event %s not tracked: %s", name, exc)

        self._completions.start(send())

    async def drain_background(self) -> None:
        """Wait for mutations still finishing and analytics events in flight (on shutdown, and
        in tests)."""
        await self._completions.drain()


def _role_of(role: str | None) -> Role | None:
    return Role(role) if role is not None else None


def _release_rows(
    now: datetime, row: ProjectRow, pending: Sequence[MemberRow]
) -> list[dict[str, Any]]:
    """Outbox rows that give back everything a deleted project holds in Billing.

    The project itself, every active seat (the owner's included: ``member_count``), and a
    compensation for each member add still waiting for Billing's answer.
    """
    releases = [
        queued_usage(now, row.owner_id, BilledMetric.PROJECTS, -1, f"{row.id}:release"),
        queued_usage(
            now,
            row.owner_id,
            BilledMetric.MEMBERS_PER_PROJECT,
            -row.member_count,
            f"{row.id}:seats:release",
            row.id,
        ),
    ]
    for member in pending:
        releases += compensation(
            now,
            row.owner_id,
            BilledMetric.MEMBERS_PER_PROJECT,
            1,
            seat_key(row.id, member.seat_id),
            row.id,
        )
    return releases


def _project_limit_message(plan_id: str, limit: object, used: object) -> str:
    """What a refused create says, whether the check or the record refused it."""
    return f"project limit reached: plan {plan_id!r} allows {limit} projects and {used} exist"
