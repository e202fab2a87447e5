"""Who may call what: the Auth service's authorization rules, in one place."""

from __future__ import annotations

from meshcore.context import Principal
from meshcore.errors import PermissionDenied, Unauthenticated
from meshcore.reasons import Reason

__all__ = [
    "ADMIN_ROLE",
    "is_admin",
    "require_account_creator",
    "require_caller",
    "require_revocation_reader",
    "require_token_validator",
    "require_user_reader",
]

ADMIN_ROLE = "admin"
USER_READ = "user:read"
SERVICE_ACCOUNT_CREATE = "service_account:create"
REVOCATION_READ = "revocation:read"
TOKEN_VALIDATE = "user:validate"  # noqa: S105 - a permission name, not a secret


def require_caller(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthenticated("this call requires credentials", reason=Reason.CREDENTIALS_MISSING)
    return principal


def is_admin(principal: Principal) -> bool:
    return principal.kind == "user" and ADMIN_ROLE in principal.roles


def require_user_reader(principal: Principal | None, user_id: str) -> None:
    """The user themself, an admin, or a service holding ``user:read``."""
    caller = require_caller(principal)
    if caller.kind == "user" and caller.subject == user_id:
        return
    if is_admin(caller) or (caller.kind == "service" and USER_READ in caller.permissions):
        return
    raise PermissionDenied("only the user themself, an admin or a service with user:read")


def require_account_creator(principal: Principal | None) -> Principal:
    """An admin user, or a service holding ``service_account:create``."""
    caller = require_caller(principal)
    if is_admin(caller):
        return caller
    if caller.kind == "service" and SERVICE_ACCOUNT_CREATE in caller.permissions:
        return caller
    raise PermissionDenied("creating service accounts needs the admin role")


def require_revocation_reader(principal: Principal | None) -> Principal:
    """A service holding ``revocation:read`` (every verifier polls ListRevocations with one)."""
    caller = require_caller(principal)
    if caller.kind == "service" and REVOCATION_READ in caller.permissions:
        return caller
    raise PermissionDenied(f"listing revocations needs a service token with {REVOCATION_READ!r}")


def require_token_validator(caller: Principal, subject: str, token_type: str) -> None:
    """A caller holding ``user:validate`` (a service granted it, an admin), or the principal
    the token belongs to (a user checking their own session)."""
    if TOKEN_VALIDATE in caller.permissions:
        return
    if (caller.kind, caller.subject) == (token_type, subject):
        return
    raise PermissionDenied(
        f"validating another principal's token needs {TOKEN_VALIDATE!r}; "
        "without it, a caller may validate only its own tokens"
    )
