"""CreateProject: the Billing check and record, no half-created project, idempotency."""

from __future__ import annotations

import asyncio

import pytest
from meshcore.context import Principal
from meshcore.db import Database
from meshcore.errors import (
    AlreadyExists,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from meshcore.resilience.breaker import CircuitOpenError
from meshcore.testing import FakeClock
from sqlalchemy import func, select
from zoptal_project.domain import Project
from zoptal_project.models import ProjectRow, UsageOutboxRow
from zoptal_project.ports import BilledMetric, LimitAnswer
from zoptal_project.service import ProjectService
from zoptal_project.usage_outbox import UsageOutboxDispatcher

from tests.unit.project.project_fakes import FakeAnalytics, FakeBilling, service, user


async def count(database: Database, model: type) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def create(
    projects: ProjectService,
    name: str = "Apollo",
    *,
    principal: Principal | None = None,
    description: str = "",
    owner_id: str | None = None,
    request_id: str | None = None,
) -> Project:
    return await projects.create_project(
        principal or user("ada"),
        name=name,
        description=description,
        owner_id=owner_id,
        request_id=request_id,
    )


async def test_create_checks_inserts_and_records_usage_keyed_by_project_id(
    projects: ProjectService, billing: FakeBilling, analytics: FakeAnalytics
) -> None:
    """The project is created at version 1 with its owner, counted once under its own id."""
    project = await create(projects, "Apollo", description="to the moon")
    assert (project.name, project.owner_id, project.version, project.member_count) == (
        "Apollo",
        "ada",
        1,
        1,
    )
    assert billing.calls == [("check", "projects"), ("record", project.id)]  # the seat is queued
    assert billing.used("ada", BilledMetric.PROJECTS) == 1
    await projects.drain_background()
    assert analytics.events == [("ada", "project.created", {"project_id": project.id})]
    assert analytics.event_ids == [f"project.created:{project.id}"]


async def test_owner_seat_is_queued_and_counted_once(
    projects: ProjectService, billing: FakeBilling, outbox: UsageOutboxDispatcher
) -> None:
    """After the create, the outbox gives Billing the owner's member seat for the project."""
    project = await create(projects)
    assert await outbox.deliver_due() == 1
    assert billing.used("ada", BilledMetric.MEMBERS_PER_PROJECT, project.id) == 1


async def test_missing_permission_is_permission_denied(projects: ProjectService) -> None:
    """Without project:create in the token nothing is checked or written."""
    reader = Principal(subject="ada", kind="user", permissions=frozenset({"project:read"}))
    with pytest.raises(PermissionDenied, match="project:create"):
        await create(projects, principal=reader)


async def test_over_the_limit_is_resource_exhausted_naming_the_limit(
    projects: ProjectService, project_db: Database
) -> None:
    """The fourth project on a 3-project plan is refused, and the message names the limit."""
    for index in range(3):
        await create(projects, f"p{index}")
    with pytest.raises(ResourceExhausted, match="project limit reached: plan 'free' allows 3"):
        await create(projects, "p3")
    assert await count(project_db, ProjectRow) == 3


class RaceLosingBilling(FakeBilling):
    """Answers "allowed" to the check, then lets a concurrent create take the last slot."""

    async def check_limit(
        self, user_id: str, metric: BilledMetric, quantity: int, *, scope_id: str = ""
    ) -> LimitAnswer:
        answer = await super().check_limit(user_id, metric, quantity, scope_id=scope_id)
        self.totals[(user_id, metric, scope_id)] = self.limits[metric]
        return answer


async def test_limit_refused_at_record_time_leaves_no_row_and_keeps_billing_s_facts(
    project_db: Database, analytics: FakeAnalytics, clock: FakeClock
) -> None:
    """When another create wins the last slot between check and record, nothing is left, and
    the error names the limit as the check's would, with the plan's facts for the client."""
    projects = ProjectService(project_db, RaceLosingBilling(), analytics, clock=clock)
    with pytest.raises(ResourceExhausted) as refused:
        await create(projects)
    assert refused.value.message == (
        "project limit reached: plan 'free' allows 3 projects and 3 exist"
    )
    assert refused.value.metadata == {
        "metric": "projects", "limit": "3", "plan_id": "free", "used": "3"
    }  # fmt: skip
    assert await count(project_db, ProjectRow) == 0
    assert await count(project_db, UsageOutboxRow) == 0


async def test_billing_down_is_unavailable_and_nothing_is_written(
    projects: ProjectService, billing: FakeBilling, project_db: Database
) -> None:
    """With Billing unreachable the create fails cleanly before touching the database."""
    billing.down = True
    with pytest.raises(Unavailable):
        await create(projects)
    assert await count(project_db, ProjectRow) == 0
    assert await count(project_db, UsageOutboxRow) == 0


class BreakerOpensAfterCheck(FakeBilling):
    """Answers the check, then refuses the record unsent, as an open breaker does."""

    async def record_usage(self, user_id: str, metric: BilledMetric, quantity: int, *,
                           idempotency_key: str, scope_id: str = "",
                           enforce_limit: bool = False) -> None:  # fmt: skip
        self.calls.append(("record", idempotency_key))
        raise Unavailable("billing is unavailable") from CircuitOpenError(retry_after=1.0)


async def test_a_record_refused_unsent_queues_no_compensation(
    project_db: Database, analytics: FakeAnalytics, clock: FakeClock
) -> None:
    """A call that never left cannot have been counted: the row goes and nothing is queued
    to cancel it (an unknown outcome queues a compensation: the test below)."""
    projects = ProjectService(project_db, BreakerOpensAfterCheck(), analytics, clock=clock)
    with pytest.raises(Unavailable):
        await create(projects)
    assert await count(project_db, ProjectRow) == 0
    assert await count(project_db, UsageOutboxRow) == 0


async def test_lost_record_answer_is_compensated_never_double_counted(
    projects: ProjectService,
    billing: FakeBilling,
    project_db: Database,
    outbox: UsageOutboxDispatcher,
) -> None:
    """Billing counted the project but the answer was lost: no project, and usage back to 0."""
    billing.lose_answer_after_recording = True
    with pytest.raises(Unavailable, match="the project was not created"):
        await create(projects)
    assert await count(project_db, ProjectRow) == 0
    assert billing.used("ada", BilledMetric.PROJECTS) == 1
    billing.lose_answer_after_recording = False
    assert await outbox.deliver_due() == 2
    assert billing.used("ada", BilledMetric.PROJECTS) == 0
    assert await count(project_db, UsageOutboxRow) == 0


async def test_analytics_failure_never_fails_the_create(
    projects: ProjectService, analytics: FakeAnalytics
) -> None:
    """A broken Analytics is logged and ignored."""
    analytics.broken = True
    project = await create(projects)
    await projects.drain_background()
    assert project.version == 1


async def test_names_are_unique_per_owner_ignoring_case(projects: ProjectService) -> None:
    """A second 'APOLLO' for the same owner is ALREADY_EXISTS; another owner may use it."""
    await create(projects, "Apollo")
    with pytest.raises(AlreadyExists, match="already have a project named"):
        await create(projects, "APOLLO")
    await create(projects, "Apollo", principal=user("bob"))


async def test_name_clash_leaves_usage_untouched(
    projects: ProjectService, billing: FakeBilling
) -> None:
    """A refused duplicate name never reaches RecordUsage."""
    await create(projects, "Apollo")
    with pytest.raises(AlreadyExists):
        await create(projects, "apollo")
    assert billing.used("ada", BilledMetric.PROJECTS) == 1


async def test_request_id_makes_create_idempotent(
    projects: ProjectService, billing: FakeBilling
) -> None:
    """A retry with the same request_id returns the first project; another name is refused."""
    first = await create(projects, "Apollo", request_id="req-1")
    again = await create(projects, "Apollo", request_id="req-1")
    assert again.id == first.id
    assert billing.used("ada", BilledMetric.PROJECTS) == 1
    with pytest.raises(AlreadyExists, match="request_id 'req-1'"):
        await create(projects, "Gemini", request_id="req-1")


async def test_concurrent_retries_with_one_request_id_create_one_project(
    projects: ProjectService, project_db: Database
) -> None:
    """Racing retries of one request produce a single project that all of them return."""
    results = await asyncio.gather(
        *(create(projects, "Apollo", request_id="req-1") for _ in range(5)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    assert created
    assert len({project.id for project in created}) == 1
    assert await count(project_db, ProjectRow) == 1


async def test_request_ids_belong_to_the_caller(
    projects: ProjectService, billing: FakeBilling, project_db: Database
) -> None:
    """An admin and a service creating for Ada with her request_id each create their own
    project (no replay of hers, no refusal naming the key); each caller's retry replays."""
    admin = user("root", roles=frozenset({"admin"}))
    creator = service("project:create")
    ada = await create(projects, "Apollo", request_id="req-1")
    with pytest.raises(AlreadyExists) as taken:  # Ada's name, not her key, stops this one
        await create(projects, "Apollo", principal=admin, owner_id="ada", request_id="req-1")
    assert "request_id" not in taken.value.message
    by_admin = await create(projects, "Gemini", principal=admin, owner_id="ada", request_id="req-1")
    by_service = await create(
        projects, "Mercury", principal=creator, owner_id="ada", request_id="req-1"
    )
    assert len({ada.id, by_admin.id, by_service.id}) == 3
    replays = [
        await create(projects, "Apollo", request_id="req-1"),
        await create(projects, "Gemini", principal=admin, owner_id="ada", request_id="req-1"),
        await create(projects, "Mercury", principal=creator, owner_id="ada", request_id="req-1"),
    ]
    assert [p.id for p in replays] == [ada.id, by_admin.id, by_service.id]
    assert await count(project_db, ProjectRow) == 3
    assert billing.used("ada", BilledMetric.PROJECTS) == 3


async def test_services_must_name_the_owner(projects: ProjectService) -> None:
    """A service token creates for owner_id; without one it is INVALID_ARGUMENT."""
    creator = service("project:create")
    with pytest.raises(InvalidArgument, match="owner_id"):
        await create(projects, principal=creator)
    project = await create(projects, principal=creator, owner_id="bob")
    assert project.owner_id == "bob"


async def test_users_cannot_create_for_someone_else(projects: ProjectService) -> None:
    """A plain user naming another owner is PERMISSION_DENIED."""
    with pytest.raises(PermissionDenied):
        await create(projects, owner_id="bob")


async def test_concurrent_creates_respect_the_limit_exactly(
    projects: ProjectService, billing: FakeBilling, project_db: Database, clock: FakeClock
) -> None:
    """Six racing creates on a 3-project plan: three projects, three refusals, usage 3."""
    results = await asyncio.gather(
        *(create(projects, f"p{index}") for index in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, ResourceExhausted) for r in results) == 3
    assert await count(project_db, ProjectRow) == 3
    assert billing.used("ada", BilledMetric.PROJECTS) == 3
