"""Who may call which Billing RPC (the rules written on each RPC in billing.proto)."""

from __future__ import annotations

from meshcore.context import Principal, require_principal
from meshcore.errors import PermissionDenied

__all__ = ["READ", "WRITE", "is_admin", "require_service", "require_user_or"]

READ = "billing:read"
WRITE = "billing:write"
_ADMIN_ROLE = "admin"


def is_admin(principal: Principal) -> bool:
    """A user holding the admin role (services hold permissions, never roles)."""
    return not principal.is_service and _ADMIN_ROLE in principal.roles


def require_user_or(user_id: str, service_permission: str) -> Principal:
    """The user themself, an admin, or a service holding ``service_permission``."""
    principal = require_principal()
    if principal.is_service:
        principal.require_permission(service_permission)
        return principal
    if principal.subject == user_id or is_admin(principal):
        return principal
    raise PermissionDenied("you may only see and change your own subscription")


def require_service(permission: str) -> Principal:
    """A service token holding ``permission`` (RecordUsage is not for end users)."""
    principal = require_principal()
    if not principal.is_service:
        raise PermissionDenied(f"only services holding {permission!r} may call this")
    principal.require_permission(permission)
    return principal
