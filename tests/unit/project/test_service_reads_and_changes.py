"""Reading, listing, updating and deleting projects: scoped to membership, versioned."""

from __future__ import annotations

import pytest
from meshcore.context import Principal
from meshcore.errors import Aborted, AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from meshcore.testing import FakeClock
from zoptal_project.access import Action, Role
from zoptal_project.domain import Project
from zoptal_project.members import MembershipService
from zoptal_project.ports import BilledMetric
from zoptal_project.service import ProjectService
from zoptal_project.usage_outbox import UsageOutboxDispatcher

from tests.unit.project.project_fakes import FakeBilling, service, user

ADA = user("ada")
BOB = user("bob")


async def create(projects: ProjectService, name: str, owner: Principal = ADA) -> Project:
    return await projects.create_project(
        owner, name=name, description="", owner_id=None, request_id=None
    )


async def test_another_users_project_is_not_found_for_every_operation(
    projects: ProjectService,
) -> None:
    """Bob cannot read, list, update, delete or probe Ada's project; it looks absent."""
    project = await create(projects, "Secret")
    with pytest.raises(NotFound):
        await projects.get_project(BOB, project.id)
    with pytest.raises(NotFound):
        await projects.update_project(BOB, project.id, 1, name="Mine", description=None)
    with pytest.raises(NotFound):
        await projects.delete_project(BOB, project.id, 0)
    with pytest.raises(NotFound):
        await projects.check_access(BOB, "bob", project.id, Action.READ)
    with pytest.raises(PermissionDenied):
        await projects.list_user_projects(BOB, "ada", 1, 20)
    assert (await projects.list_user_projects(BOB, None, 1, 20)).total_count == 0


async def test_unknown_and_foreign_ids_answer_the_same(projects: ProjectService) -> None:
    """NOT_FOUND for a foreign project reads exactly like one for an id that never existed."""
    project = await create(projects, "Secret")
    with pytest.raises(NotFound) as foreign:
        await projects.get_project(BOB, project.id)
    with pytest.raises(NotFound) as missing:
        await projects.get_project(BOB, "00000000-0000-0000-0000-000000000000")
    assert foreign.value.kind == missing.value.kind == "project"


async def test_admin_and_reader_service_see_any_project(projects: ProjectService) -> None:
    """Admins and services with project:read read without being members."""
    project = await create(projects, "Apollo")
    admin = user("root", roles=frozenset({"admin"}))
    assert (await projects.get_project(admin, project.id)) == (project, None)
    assert (await projects.get_project(service("project:read"), project.id))[0] == project
    listed = await projects.list_user_projects(admin, "ada", 1, 20)
    assert [p.id for p, _ in listed.items] == [project.id]


async def test_list_is_newest_first_paged_with_total(
    projects: ProjectService, billing: FakeBilling, clock: FakeClock
) -> None:
    """Pages follow creation time, newest first, and always carry the total count."""
    billing.limits[BilledMetric.PROJECTS] = 10
    names = [f"p{index}" for index in range(5)]
    for name in names:
        await create(projects, name)
        clock.advance(1)
    first = await projects.list_user_projects(ADA, None, 1, 2)
    third = await projects.list_user_projects(ADA, None, 3, 2)
    assert [p.name for p, _ in first.items] == ["p4", "p3"]
    assert [p.name for p, _ in third.items] == ["p0"]
    assert (first.total_count, third.total_count) == (5, 5)
    assert {role for _, role in first.items} == {Role.OWNER}


async def test_service_listing_must_name_the_user(projects: ProjectService) -> None:
    """A service has no projects of its own: user_id is required."""
    with pytest.raises(InvalidArgument, match="user_id"):
        await projects.list_user_projects(service("project:read"), None, 1, 20)


async def test_update_applies_fields_and_bumps_the_version(projects: ProjectService) -> None:
    """Only the fields that are set change; the version goes up by one."""
    project = await create(projects, "Apollo")
    updated = await projects.update_project(
        ADA, project.id, 1, name=None, description="to the moon"
    )
    assert (updated.name, updated.description, updated.version) == ("Apollo", "to the moon", 2)


async def test_stale_version_is_aborted(projects: ProjectService) -> None:
    """Two clients updating from version 1: the second is ABORTED and changes nothing."""
    project = await create(projects, "Apollo")
    await projects.update_project(ADA, project.id, 1, name="Artemis", description=None)
    with pytest.raises(Aborted, match="re-read"):
        await projects.update_project(ADA, project.id, 1, name="Gemini", description=None)
    assert (await projects.get_project(ADA, project.id))[0].name == "Artemis"


async def test_rename_onto_an_existing_name_is_already_exists(projects: ProjectService) -> None:
    """Renaming to another of the owner's project names is refused."""
    await create(projects, "Apollo")
    other = await create(projects, "Gemini")
    with pytest.raises(AlreadyExists):
        await projects.update_project(ADA, other.id, 1, name="apollo", description=None)


async def test_editor_updates_and_viewer_is_denied(
    projects: ProjectService, members: MembershipService
) -> None:
    """Roles decide: an editor may update, a viewer may only read."""
    project = await create(projects, "Apollo")
    await members.add_member(ADA, project.id, "bob", Role.EDITOR)
    await members.add_member(ADA, project.id, "cy", Role.VIEWER)
    await projects.update_project(BOB, project.id, 1, name=None, description="edited")
    with pytest.raises(PermissionDenied):
        await projects.update_project(user("cy"), project.id, 2, name=None, description="x")
    assert (await projects.get_project(user("cy"), project.id))[1] is Role.VIEWER
    with pytest.raises(PermissionDenied):
        await projects.delete_project(BOB, project.id, 0)


async def test_check_access_answers_per_action(
    projects: ProjectService, members: MembershipService
) -> None:
    """A service learns a member's role and rights; a non-member is a plain 'no'."""
    project = await create(projects, "Apollo")
    await members.add_member(ADA, project.id, "bob", Role.VIEWER)
    checker = service("project:read")
    assert await projects.check_access(checker, "bob", project.id, Action.READ) == (
        True,
        Role.VIEWER,
    )
    assert await projects.check_access(checker, "bob", project.id, Action.UPDATE) == (
        False,
        Role.VIEWER,
    )
    assert await projects.check_access(checker, "eve", project.id, Action.READ) == (False, None)
    with pytest.raises(NotFound):
        await projects.check_access(checker, "bob", "no-such-project", Action.READ)


async def test_delete_hides_the_project_and_releases_its_usage(
    projects: ProjectService,
    members: MembershipService,
    billing: FakeBilling,
    outbox: UsageOutboxDispatcher,
) -> None:
    """After delete the project is gone and, once the outbox drains, Billing is back to zero."""
    project = await create(projects, "Apollo")
    await members.add_member(ADA, project.id, "bob", Role.EDITOR)
    await projects.delete_project(ADA, project.id, 0)
    with pytest.raises(NotFound):
        await projects.get_project(ADA, project.id)
    with pytest.raises(NotFound):
        await projects.delete_project(ADA, project.id, 0)
    await outbox.deliver_due()
    assert billing.used("ada", BilledMetric.PROJECTS) == 0
    assert billing.used("ada", BilledMetric.MEMBERS_PER_PROJECT, project.id) == 0


async def test_delete_with_a_stale_version_is_aborted(projects: ProjectService) -> None:
    """DeleteProject with a version that is no longer current deletes nothing."""
    project = await create(projects, "Apollo")
    await projects.update_project(ADA, project.id, 1, name=None, description="changed")
    with pytest.raises(Aborted):
        await projects.delete_project(ADA, project.id, 1)
    await projects.delete_project(ADA, project.id, 2)
