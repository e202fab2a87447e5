"""Who may do what to a project: roles, actions and the caller's standing.

A user's rights come from their membership role; admins (role ``admin`` in the token) may read
every project; services act through the permissions of their service token. A caller who may not
even read a project is told NOT_FOUND, so project ids never reveal another user's data.
"""

from __future__ import annotations

import enum

from meshcore.context import Principal
from meshcore.errors import NotFound, PermissionDenied

__all__ = ["ADMIN_ROLE", "Action", "Role", "ensure_allowed", "role_allows"]

ADMIN_ROLE = "admin"


class Role(enum.StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


class Action(enum.StrEnum):
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    MANAGE_MEMBERS = "manage_members"


_ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.EDITOR: frozenset({Action.READ, Action.UPDATE}),
    Role.VIEWER: frozenset({Action.READ}),
}

# The service-token permission that grants an action on any project.
_SERVICE_PERMISSION: dict[Action, str] = {
    Action.READ: "project:read",
    Action.UPDATE: "project:write",
    Action.DELETE: "project:delete",
    Action.MANAGE_MEMBERS: "project:write",
}


def role_allows(role: Role | None, action: Action) -> bool:
    return role is not None and action in _ROLE_ACTIONS[role]


def is_admin(principal: Principal) -> bool:
    return ADMIN_ROLE in principal.roles


def may_read_any(principal: Principal) -> bool:
    """Admins and services holding ``project:read`` see every project."""
    return is_admin(principal) or (
        principal.is_service and principal.has_permission(_SERVICE_PERMISSION[Action.READ])
    )


def ensure_allowed(
    principal: Principal, project_id: str, role: Role | None, action: Action
) -> None:
    """Raise unless ``principal`` (holding ``role`` in the project, or none) may do ``action``.

    NOT_FOUND when the caller may not even read the project; PERMISSION_DENIED when they may
    read it but not do this.
    """
    if role_allows(role, action):
        return
    if action is Action.READ and may_read_any(principal):
        return
    if principal.is_service and principal.has_permission(_SERVICE_PERMISSION[action]):
        return
    if role is None and not may_read_any(principal):
        raise NotFound("project", project_id)
    raise PermissionDenied(f"your role in project {project_id!r} does not allow {action.value}")
