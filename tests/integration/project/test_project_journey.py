"""The create-project journey over real gRPC: Project -> Billing -> Notification, on PostgreSQL."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sqlalchemy import func, select
from zoptal.billing.v1 import billing_pb2
from zoptal.clients.errors import UnavailableError, api_error
from zoptal.notification.v1 import notification_pb2
from zoptal.project.v1 import project_pb2 as pb
from zoptal_billing.models import ThresholdNoticeRow

from tests.mesh import InProcessMesh, RecordingAnalytics

pytestmark = pytest.mark.postgres


async def expect(code: grpc.StatusCode, call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    assert error.value.code() == code, error.value.details()
    return error.value.details() or ""


async def projects_used(mesh: InProcessMesh, user_id: str, bearer: object) -> int:
    reply = await mesh.billing.GetUserSubscription(
        billing_pb2.GetUserSubscriptionRequest(user_id=user_id), metadata=bearer
    )
    return next(u.used for u in reply.usage if u.metric == billing_pb2.METRIC_PROJECTS)


async def test_create_project_journey_counts_usage_and_tracks_the_event(
    mesh: InProcessMesh, analytics: RecordingAnalytics
) -> None:
    """A new user creates a project: it is readable, listed, counted once, tracked once."""
    ada, bearer = await mesh.user("ada@example.com")
    created = await mesh.project.CreateProject(
        pb.CreateProjectRequest(name="Apollo", description="moon", request_id="req-1"),
        metadata=bearer,
    )
    project = created.project
    assert (project.owner_id, project.version, project.member_count) == (ada, 1, 1)
    fetched = await mesh.project.GetProject(
        pb.GetProjectRequest(project_id=project.id), metadata=bearer
    )
    assert fetched.caller_role == pb.PROJECT_ROLE_OWNER
    listed = await mesh.project.ListUserProjects(pb.ListUserProjectsRequest(), metadata=bearer)
    assert [p.project.id for p in listed.projects] == [project.id]
    assert listed.total_count == 1
    again = await mesh.project.CreateProject(
        pb.CreateProjectRequest(name="Apollo", description="moon", request_id="req-1"),
        metadata=bearer,
    )
    assert again.project.id == project.id
    assert await projects_used(mesh, ada, bearer) == 1
    async with asyncio.timeout(5):
        await analytics.arrived.wait()
    assert [(e.name, e.user_id) for e in analytics.events] == [("project.created", ada)]
    assert analytics.events[0].event_id == f"project.created:{project.id}"
    assert all(analytics.service_tokens), "calls between services carry a service token"


async def test_reaching_the_plan_limit_emails_once_per_threshold(mesh: InProcessMesh) -> None:
    """Three projects on free: the third is 80 % and 100 % at once, so one email, the 100 %
    one, is queued once; the fourth is refused."""
    ada, bearer = await mesh.user("ada@example.com")
    for index in range(3):
        await mesh.project.CreateProject(pb.CreateProjectRequest(name=f"p{index}"), metadata=bearer)
    details = await expect(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        mesh.project.CreateProject(pb.CreateProjectRequest(name="p3"), metadata=bearer),
    )
    assert "project limit reached" in details
    assert "3" in details

    async def emails() -> list[str]:
        history = await mesh.notification.GetNotificationHistory(
            notification_pb2.GetNotificationHistoryRequest(user_id=ada), metadata=bearer
        )
        return sorted(n.subject for n in history.notifications)

    async def undelivered() -> int:
        async with mesh.billing_app.database.session() as session:
            query = select(func.count()).where(ThresholdNoticeRow.delivered_at.is_(None))
            return int(await session.scalar(query) or 0)

    # Billing's dispatcher delivers in the background: wait until its outbox is empty.
    for _ in range(150):
        if not await undelivered():
            break
        await asyncio.sleep(0.1)
    assert await emails() == ["You have reached your plan's limit of 3 projects"]


async def test_free_plan_limit_is_exact_under_concurrent_creates(mesh: InProcessMesh) -> None:
    """Eight racing creates on the free plan: three projects exist and Billing counts three."""
    ada, bearer = await mesh.user("ada@example.com")
    results = await asyncio.gather(
        *(
            mesh.project.CreateProject(pb.CreateProjectRequest(name=f"race-{i}"), metadata=bearer)
            for i in range(8)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert len(results) - len(refused) == 3
    listed = await mesh.project.ListUserProjects(pb.ListUserProjectsRequest(), metadata=bearer)
    assert listed.total_count == 3
    assert await projects_used(mesh, ada, bearer) == 3


async def test_another_user_can_neither_read_nor_change_the_project(mesh: InProcessMesh) -> None:
    """Bob gets NOT_FOUND for Ada's project id on every RPC; nothing of it leaks."""
    _, ada = await mesh.user("ada@example.com")
    _, bob = await mesh.user("bob@example.com")
    project = (
        await mesh.project.CreateProject(pb.CreateProjectRequest(name="Secret"), metadata=ada)
    ).project
    not_found = grpc.StatusCode.NOT_FOUND
    details = await expect(
        not_found,
        mesh.project.GetProject(pb.GetProjectRequest(project_id=project.id), metadata=bob),
    )
    assert "Secret" not in details
    await expect(
        not_found,
        mesh.project.UpdateProject(
            pb.UpdateProjectRequest(project_id=project.id, version=1, name="Mine"), metadata=bob
        ),
    )
    await expect(
        not_found,
        mesh.project.DeleteProject(pb.DeleteProjectRequest(project_id=project.id), metadata=bob),
    )
    await expect(
        not_found,
        mesh.project.ListProjectMembers(
            pb.ListProjectMembersRequest(project_id=project.id), metadata=bob
        ),
    )
    unchanged = await mesh.project.GetProject(
        pb.GetProjectRequest(project_id=project.id), metadata=ada
    )
    assert (unchanged.project.name, unchanged.project.version) == ("Secret", 1)


async def test_members_are_checked_in_auth_and_counted_in_billing(mesh: InProcessMesh) -> None:
    """Ada adds Bob (who exists in Auth) as editor; Bob can update; a stranger id is NOT_FOUND."""
    ada_id, ada = await mesh.user("ada@example.com")
    bob_id, bob = await mesh.user("bob@example.com")
    project = (
        await mesh.project.CreateProject(pb.CreateProjectRequest(name="Apollo"), metadata=ada)
    ).project
    member = await mesh.project.AddProjectMember(
        pb.AddProjectMemberRequest(
            project_id=project.id, user_id=bob_id, role=pb.PROJECT_ROLE_EDITOR
        ),
        metadata=ada,
    )
    assert member.member.role == pb.PROJECT_ROLE_EDITOR
    updated = await mesh.project.UpdateProject(
        pb.UpdateProjectRequest(project_id=project.id, version=1, description="edited"),
        metadata=bob,
    )
    assert updated.project.version == 2
    await expect(
        grpc.StatusCode.ABORTED,
        mesh.project.UpdateProject(
            pb.UpdateProjectRequest(project_id=project.id, version=1, description="stale"),
            metadata=ada,
        ),
    )
    await expect(
        grpc.StatusCode.NOT_FOUND,
        mesh.project.AddProjectMember(
            pb.AddProjectMemberRequest(
                project_id=project.id,
                user_id="00000000-0000-0000-0000-000000000000",
                role=pb.PROJECT_ROLE_VIEWER,
            ),
            metadata=ada,
        ),
    )
    check = await mesh.billing.CheckSubscriptionLimits(
        billing_pb2.CheckSubscriptionLimitsRequest(
            user_id=ada_id, metric=billing_pb2.METRIC_MEMBERS_PER_PROJECT, scope_id=project.id
        ),
        metadata=ada,
    )
    assert check.current_usage == 2


async def test_bad_input_names_the_field(mesh: InProcessMesh) -> None:
    """INVALID_ARGUMENT messages start with the field the client must fix."""
    _, ada = await mesh.user("ada@example.com")
    cases = [
        (pb.CreateProjectRequest(name="  "), "name"),
        (pb.CreateProjectRequest(name="x" * 101), "name"),
        (pb.CreateProjectRequest(name="ok", description="d" * 2001), "description"),
        (pb.CreateProjectRequest(name="ok", request_id="not ok"), "request_id"),
    ]
    for request, field in cases:
        details = await expect(
            grpc.StatusCode.INVALID_ARGUMENT, mesh.project.CreateProject(request, metadata=ada)
        )
        assert details.startswith(f"{field}:"), details
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        mesh.project.ListUserProjects(pb.ListUserProjectsRequest(limit=101), metadata=ada),
    )
    assert details.startswith("limit:")


async def test_billing_stopped_create_fails_cleanly_and_leaves_nothing(mesh: InProcessMesh) -> None:
    """With Billing down CreateProject is UNAVAILABLE and no project, visible or not, remains."""
    _, ada = await mesh.user("ada@example.com")
    await mesh.servers["billing"].server.stop()
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await mesh.project.CreateProject(pb.CreateProjectRequest(name="Doomed"), metadata=ada)
    outage = api_error(failed.value)  # what a typed client raises
    assert isinstance(outage, UnavailableError)
    assert (outage.reason, dict(outage.metadata)) == (
        "DEPENDENCY_UNAVAILABLE",
        {"dependency": "billing"},
    )
    assert outage.retry_after is not None
    listed = await mesh.project.ListUserProjects(pb.ListUserProjectsRequest(), metadata=ada)
    assert listed.total_count == 0
    from sqlalchemy import func, select
    from zoptal_project.models import ProjectRow

    async with mesh.project_app.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(ProjectRow)) == 0


async def test_analytics_down_never_fails_the_create(
    mesh: InProcessMesh, analytics: RecordingAnalytics
) -> None:
    """A failing Analytics is off the critical path."""
    _, ada = await mesh.user("ada@example.com")
    analytics.broken = True
    created = await mesh.project.CreateProject(pb.CreateProjectRequest(name="Apollo"), metadata=ada)
    assert created.project.version == 1
