"""The role/action rules of Project (zoptal_project.access), without a database."""

from __future__ import annotations

import pytest
from meshcore.errors import NotFound, PermissionDenied
from zoptal_project.access import Action, Role, ensure_allowed, role_allows

from tests.unit.project.project_fakes import service, user


def test_each_role_includes_the_rights_below_it() -> None:
    """Owners do everything, editors read and update, viewers only read."""
    assert all(role_allows(Role.OWNER, action) for action in Action)
    assert [a for a in Action if role_allows(Role.EDITOR, a)] == [Action.READ, Action.UPDATE]
    assert [a for a in Action if role_allows(Role.VIEWER, a)] == [Action.READ]
    assert not role_allows(None, Action.READ)


def test_outsiders_get_not_found_and_members_get_permission_denied() -> None:
    """A non-member cannot tell the project exists; a viewer is told it lacks the right."""
    with pytest.raises(NotFound):
        ensure_allowed(user("eve"), "p1", None, Action.READ)
    with pytest.raises(PermissionDenied):
        ensure_allowed(user("bob"), "p1", Role.VIEWER, Action.UPDATE)


def test_admins_read_everything_but_change_nothing_without_a_role() -> None:
    """The admin role grants reading any project, not changing it."""
    admin = user("root", roles=frozenset({"admin"}))
    ensure_allowed(admin, "p1", None, Action.READ)
    with pytest.raises(PermissionDenied):
        ensure_allowed(admin, "p1", None, Action.DELETE)


def test_services_act_through_their_token_permissions() -> None:
    """project:read lets a service read, project:write update, project:delete delete."""
    ensure_allowed(service("project:read"), "p1", None, Action.READ)
    ensure_allowed(service("project:write"), "p1", None, Action.UPDATE)
    ensure_allowed(service("project:delete"), "p1", None, Action.DELETE)
    with pytest.raises(NotFound):
        ensure_allowed(service("billing:read"), "p1", None, Action.READ)
