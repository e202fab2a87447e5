"""Membership: seats counted in Billing exactly, roles, leaving, listing."""

from __future__ import annotations

import pytest
from meshcore.db import Database
from meshcore.errors import FailedPrecondition, NotFound, PermissionDenied, ResourceExhausted
from meshcore.testing import FakeClock
from sqlalchemy import select
from zoptal_project.access import Role
from zoptal_project.domain import Project
from zoptal_project.members import MembershipService
from zoptal_project.models import MemberRow
from zoptal_project.ports import BilledMetric
from zoptal_project.service import ProjectService
from zoptal_project.usage_outbox import UsageOutboxDispatcher

from tests.unit.project.project_fakes import FakeBilling, user

ADA = user("ada")


async def apollo(projects: ProjectService) -> Project:
    return await projects.create_project(
        ADA, name="Apollo", description="", owner_id=None, request_id=None
    )


async def test_added_member_is_visible_and_their_seat_counted(
    projects: ProjectService,
    members: MembershipService,
    billing: FakeBilling,
    outbox: UsageOutboxDispatcher,
) -> None:
    """Adding Bob counts the owner's seat and Bob's once each, even after the outbox drains."""
    project = await apollo(projects)
    member = await members.add_member(ADA, project.id, "bob", Role.EDITOR)
    assert (member.user_id, member.role) == ("bob", Role.EDITOR)
    await outbox.deliver_due()
    assert billing.used("ada", BilledMetric.MEMBERS_PER_PROJECT, project.id) == 2
    assert (await projects.get_project(ADA, project.id))[0].member_count == 2


async def test_member_limit_counts_the_owner_and_refuses_cleanly(
    projects: ProjectService, members: MembershipService, project_db: Database
) -> None:
    """Five seats on the free plan: owner plus four; the fifth member is RESOURCE_EXHAUSTED."""
    project = await apollo(projects)
    for name in ("bob", "cy", "dee", "eve"):
        await members.add_member(ADA, project.id, name, Role.VIEWER)
    with pytest.raises(ResourceExhausted, match="member limit reached"):
        await members.add_member(ADA, project.id, "fay", Role.VIEWER)
    async with project_db.session() as session:
        users = set(await session.scalars(select(MemberRow.user_id)))
    assert "fay" not in users


async def test_adding_again_changes_only_the_role(
    projects: ProjectService, members: MembershipService, billing: FakeBilling
) -> None:
    """Re-adding a member with the same role is a no-op; another role re-roles, no new seat."""
    project = await apollo(projects)
    await members.add_member(ADA, project.id, "bob", Role.VIEWER)
    same = await members.add_member(ADA, project.id, "bob", Role.VIEWER)
    promoted = await members.add_member(ADA, project.id, "bob", Role.EDITOR)
    assert (same.role, promoted.role) == (Role.VIEWER, Role.EDITOR)
    assert billing.used("ada", BilledMetric.MEMBERS_PER_PROJECT, project.id) == 2


async def test_unknown_user_is_not_found(
    projects: ProjectService, members: MembershipService
) -> None:
    """Only users Auth knows can be added."""
    project = await apollo(projects)
    with pytest.raises(NotFound, match="user"):
        await members.add_member(ADA, project.id, "ghost", Role.VIEWER)


async def test_only_the_owner_manages_members(
    projects: ProjectService, members: MembershipService
) -> None:
    """An editor cannot add members; an outsider cannot even see the project."""
    project = await apollo(projects)
    await members.add_member(ADA, project.id, "bob", Role.EDITOR)
    with pytest.raises(PermissionDenied):
        await members.add_member(user("bob"), project.id, "cy", Role.VIEWER)
    with pytest.raises(NotFound):
        await members.add_member(user("eve"), project.id, "cy", Role.VIEWER)


async def test_owner_cannot_be_re_roled_or_removed(
    projects: ProjectService, members: MembershipService
) -> None:
    """The owner's membership is fixed."""
    project = await apollo(projects)
    with pytest.raises(FailedPrecondition):
        await members.add_member(ADA, project.id, "ada", Role.VIEWER)
    with pytest.raises(FailedPrecondition):
        await members.remove_member(ADA, project.id, "ada")


async def test_member_may_leave_and_seat_is_released(
    projects: ProjectService,
    members: MembershipService,
    billing: FakeBilling,
    outbox: UsageOutboxDispatcher,
) -> None:
    """Bob removes himself; he loses access and his seat goes back."""
    project = await apollo(projects)
    await members.add_member(ADA, project.id, "bob", Role.VIEWER)
    await members.remove_member(user("bob"), project.id, "bob")
    with pytest.raises(NotFound):
        await projects.get_project(user("bob"), project.id)
    with pytest.raises(NotFound):
        await members.remove_member(ADA, project.id, "bob")
    await outbox.deliver_due()
    assert billing.used("ada", BilledMetric.MEMBERS_PER_PROJECT, project.id) == 1


async def test_members_are_listed_owner_first_then_by_join_time(
    projects: ProjectService, members: MembershipService, clock: FakeClock
) -> None:
    """ListProjectMembers: the owner, then members in the order they joined."""
    project = await apollo(projects)
    for name in ("cy", "bob"):
        await members.add_member(ADA, project.id, name, Role.VIEWER)
        clock.advance(1)
    page = await members.list_members(user("bob"), project.id, 1, 20)
    assert [m.user_id for m in page.items] == ["ada", "cy", "bob"]
    assert page.total_count == 3
