"""CreateProject's request_id belongs to its caller: over real gRPC, with Auth's real tokens,
Billing on PostgreSQL and Project on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
from meshcore.db import Database
from sqlalchemy import text
from zoptal.project.v1 import project_pb2 as pb
from zoptal_project import MIGRATIONS_DIR as PROJECT_MIGRATIONS
from zoptal_project.repository import ProjectRepository

from tests.integration.project.test_project_journey import expect, projects_used
from tests.mesh import InProcessMesh
from tests.migrating import upgrade_with_rows

pytestmark = pytest.mark.postgres


def _create(name: str, request_id: str, owner_id: str = "") -> pb.CreateProjectRequest:
    return pb.CreateProjectRequest(name=name, request_id=request_id, owner_id=owner_id)


async def test_two_users_an_admin_and_a_service_reusing_a_request_id_each_create(
    mesh: InProcessMesh,
) -> None:
    """Ada and Bob both use "req-1"; the admin and a service then use it creating for Ada:
    four projects, each caller's retry returns its own, and nobody is told about another's."""
    ada, ada_bearer = await mesh.user("ada@example.com")
    bob, bob_bearer = await mesh.user("bob@example.com")
    _, admin = await mesh.admin("root@example.com")
    _, creator = await mesh.service(admin, "onboarding", "project:create")
    projects = mesh.project

    by_ada = (await projects.CreateProject(_create("Apollo", "req-1"), metadata=ada_bearer)).project
    by_bob = (await projects.CreateProject(_create("Apollo", "req-1"), metadata=bob_bearer)).project
    # Ada's name and key from the admin: a create of the admin's own, stopped by Ada's name.
    details = await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        projects.CreateProject(_create("Apollo", "req-1", owner_id=ada), metadata=admin),
    )
    assert "request_id" not in details
    by_admin = (
        await projects.CreateProject(_create("Gemini", "req-1", owner_id=ada), metadata=admin)
    ).project
    by_service = (
        await projects.CreateProject(_create("Mercury", "req-1", owner_id=ada), metadata=creator)
    ).project

    firsts = [by_ada, by_bob, by_admin, by_service]
    assert len({project.id for project in firsts}) == 4
    assert [p.owner_id for p in firsts] == [ada, bob, ada, ada]
    replays = [
        await projects.CreateProject(_create("Apollo", "req-1"), metadata=ada_bearer),
        await projects.CreateProject(_create("Apollo", "req-1"), metadata=bob_bearer),
        await projects.CreateProject(_create("Gemini", "req-1", owner_id=ada), metadata=admin),
        await projects.CreateProject(_create("Mercury", "req-1", owner_id=ada), metadata=creator),
    ]
    assert [reply.project.id for reply in replays] == [project.id for project in firsts]
    listed = await projects.ListUserProjects(pb.ListUserProjectsRequest(), metadata=ada_bearer)
    assert listed.total_count == 3
    assert await projects_used(mesh, ada, ada_bearer) == 3
    assert await projects_used(mesh, bob, bob_bearer) == 1


async def test_racing_retries_by_two_callers_create_one_project_each(mesh: InProcessMesh) -> None:
    """Ada and a service (for Ada) each send six concurrent creates with "race-1": two
    projects, each caller's answers all naming its own, counted twice in Billing."""
    ada, ada_bearer = await mesh.user("ada@example.com")
    _, admin = await mesh.admin("root@example.com")
    _, creator = await mesh.service(admin, "onboarding", "project:create")
    calls = [
        mesh.project.CreateProject(_create("Own", "race-1"), metadata=ada_bearer),
        mesh.project.CreateProject(_create("Onboarded", "race-1", owner_id=ada), metadata=creator),
    ] * 6
    results = await asyncio.gather(*calls, return_exceptions=True)
    # A retry that finds its first attempt still being created may be told ABORTED (retry).
    failed = [r for r in results if isinstance(r, BaseException)]
    assert all(
        isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.ABORTED for r in failed
    ), failed
    by_ada = {r.project.id for r in results[0::2] if not isinstance(r, BaseException)}
    by_service = {r.project.id for r in results[1::2] if not isinstance(r, BaseException)}
    assert len(by_ada) == len(by_service) == 1
    assert by_ada != by_service
    listed = await mesh.project.ListUserProjects(pb.ListUserProjectsRequest(), metadata=ada_bearer)
    assert sorted(p.project.name for p in listed.projects) == ["Onboarded", "Own"]
    assert await projects_used(mesh, ada, ada_bearer) == 2


async def test_migration_0002_gives_existing_projects_their_owner_and_keeps_members(
    sqlite_or_postgres_url: str,
) -> None:
    """Projects created before callers were recorded belong to their owner's key space (so the
    owner's retry still replays), and on SQLite the rebuild of `projects` keeps every member."""
    url = sqlite_or_postgres_url
    now = datetime.now(UTC)
    project = (
        "INSERT INTO projects (id, owner_id, name, name_key, description, state, version,"
        " member_count, request_id, created_at, updated_at) VALUES"
        " ('p1', 'u1', 'A', 'a', '', 'active', 1, 2, 'r1', :now, :now)"
    )
    member = (
        "INSERT INTO project_members (project_id, user_id, role, state, seat_id, joined_at,"
        " updated_at) VALUES ('p1', :user, :role, 'active', :user, :now, :now)"
    )
    await upgrade_with_rows(
        url,
        PROJECT_MIGRATIONS,
        "0001",
        [
            (project, {"now": now}),
            (member, {"user": "u1", "role": "owner", "now": now}),
            (member, {"user": "u2", "role": "viewer", "now": now}),
        ],
    )
    database = Database(url)
    try:
        async with database.session() as session:
            repository = ProjectRepository(session)
            owners_retry = await repository.project_by_request_id("u1", "user:u1", "r1")
            others_retry = await repository.project_by_request_id("u1", "service:s", "r1")
        async with database.connection() as connection:
            members = (
                await connection.execute(
                    text("SELECT user_id FROM project_members ORDER BY user_id")
                )
            ).scalars()
            member_ids = list(members)
    finally:
        await database.dispose()
    assert owners_retry is not None
    assert (owners_retry.id, owners_retry.caller) == ("p1", "user:u1")
    assert others_retry is None
    assert member_ids == ["u1", "u2"]
