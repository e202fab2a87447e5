"""Who may call what, as the proto documents it (the auth interceptor has already proved
who the caller is; these checks decide what that caller may do)."""

from __future__ import annotations

from meshcore.context import Principal, require_principal
from meshcore.errors import PermissionDenied

__all__ = ["ADMIN_ROLE", "require_reader_of", "require_sender"]

ADMIN_ROLE = "admin"
SEND_PERMISSION = "notification:send"
READ_PERMISSION = "notification:read"


def _is_admin(principal: Principal) -> bool:
    return ADMIN_ROLE in principal.roles


def require_sender() -> Principal:
    """Sends: a service token with ``notification:send``, or an admin."""
    principal = require_principal()
    if _is_admin(principal) or (principal.is_service and SEND_PERMISSION in principal.permissions):
        return principal
    raise PermissionDenied(f"sending needs a service token with {SEND_PERMISSION!r}, or admin")


def require_reader_of(user_id: str) -> Principal:
    """Reads: the user themself, an admin, or a service token with ``notification:read``."""
    principal = require_principal()
    if _is_admin(principal):
        return principal
    if principal.is_service and READ_PERMISSION in principal.permissions:
        return principal
    if not principal.is_service and user_id and principal.subject == user_id:
        return principal
    raise PermissionDenied("only the user themself, an admin or a notification reader may read")
