"""Input validation and the role/action rules, without a database."""

from __future__ import annotations

import pytest
from meshcore.errors import InvalidArgument, NotFound, PermissionDenied
from zoptal_project import validation
from zoptal_project.access import Action, Role, ensure_allowed, role_allows

from tests.unit.project.project_fakes import service, user


def test_names_are_trimmed_and_bounded() -> None:
    """Names lose surrounding spaces; empty, too long or control characters are refused."""
    assert validation.name("name", "  Apollo ") == "Apollo"
    for bad in ("", "   ", "x" * 101, "bad\nname", "zero\u200bwidth"):
        with pytest.raises(InvalidArgument) as error:
            validation.name("name", bad)
        assert error.value.field == "name"


def test_name_key_ignores_case_and_compatibility_forms() -> None:
    """Uniqueness is case-insensitive and NFKC-normalised."""
    assert validation.name_key("Apollo") == validation.name_key("APOLLO")
    assert validation.name_key("ﬁle") == validation.name_key("FILE")


def test_ids_are_required_and_bounded() -> None:
    """Ids must be present, at most 64 characters, with no padding or control characters."""
    assert validation.identifier("project_id", "p-1") == "p-1"
    for bad in ("", "x" * 65, " p", "p\x00"):
        with pytest.raises(InvalidArgument, match="project_id"):
            validation.identifier("project_id", bad)


def test_request_id_alphabet() -> None:
    """request_id is optional; when set it is 1..128 characters of [A-Za-z0-9._:-]."""
    assert validation.request_id("request_id", "") is None
    assert validation.request_id("request_id", "abc-1:2.3_4") == "abc-1:2.3_4"
    for bad in ("has space", "x" * 129, "é"):
        with pytest.raises(InvalidArgument, match="request_id"):
            validation.request_id("request_id", bad)


def test_page_and_limit_defaults_and_ranges() -> None:
    """page 0 means 1, limit 0 means 20; negatives and limits over 100 are refused."""
    assert validation.page_and_limit(0, 0) == (1, 20)
    assert validation.page_and_limit(3, 100) == (3, 100)
    with pytest.raises(InvalidArgument, match="page"):
        validation.page_and_limit(-1, 10)
    with pytest.raises(InvalidArgument, match="limit"):
        validation.page_and_limit(1, 101)


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
