"""Who may call what, as the proto documents it (the auth interceptor proved who calls)."""

from __future__ import annotations

from meshcore.context import Principal, require_principal
from meshcore.errors import PermissionDenied

__all__ = ["own_user_id", "require_reader", "require_writer"]

ADMIN_ROLE = "admin"
WRITE_PERMISSION = "analytics:write"
READ_PERMISSION = "analytics:read"


def _service_with(principal: Principal, permission: str) -> bool:
    return principal.is_service and permission in principal.permissions


def require_writer() -> Principal:
    """Batch ingest: a service token with ``analytics:write``, or an admin."""
    principal = require_principal()
    if ADMIN_ROLE in principal.roles or _service_with(principal, WRITE_PERMISSION):
        return principal
    raise PermissionDenied(f"batch ingest needs a service token with {WRITE_PERMISSION!r}")


def own_user_id(user_id: str) -> str:
    """Single events: writers may track anyone; a user only themself (empty means themself)."""
    principal = require_principal()
    if ADMIN_ROLE in principal.roles or _service_with(principal, WRITE_PERMISSION):
        return user_id
    if principal.is_service:
        raise PermissionDenied(f"tracking needs a service token with {WRITE_PERMISSION!r}")
    if user_id and user_id != principal.subject:
        raise PermissionDenied("users may track only their own events")
    return principal.subject


def require_reader() -> Principal:
    """Queries: an admin, or a service token with ``analytics:read``."""
    principal = require_principal()
    if ADMIN_ROLE in principal.roles or _service_with(principal, READ_PERMISSION):
        return principal
    raise PermissionDenied(f"queries need admin or a service token with {READ_PERMISSION!r}")
