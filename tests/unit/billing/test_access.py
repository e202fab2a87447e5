"""Who may call what in Billing (zoptal_billing.access), without a server."""

from __future__ import annotations

import pytest
from meshcore.context import Principal, call_scope
from meshcore.errors import PermissionDenied, Unauthenticated
from zoptal_billing.access import READ, WRITE, require_service, require_user_or

ADA = Principal(subject="ada", kind="user")
ADMIN = Principal(subject="root", kind="user", roles=frozenset({"admin"}))
METER = Principal(subject="project", kind="service", permissions=frozenset({READ, WRITE}))
READER = Principal(subject="report", kind="service", permissions=frozenset({READ}))


def test_users_reach_only_their_own_subscription() -> None:
    """The user themself and admins pass; another user is PERMISSION_DENIED."""
    with call_scope(principal=ADA):
        require_user_or("ada", READ)
        with pytest.raises(PermissionDenied):
            require_user_or("bob", READ)
    with call_scope(principal=ADMIN):
        require_user_or("bob", WRITE)


def test_services_need_the_named_permission() -> None:
    """billing:read does not let a service change subscriptions or meter usage."""
    with call_scope(principal=READER):
        require_user_or("ada", READ)
        with pytest.raises(PermissionDenied, match="billing:write"):
            require_user_or("ada", WRITE)
        with pytest.raises(PermissionDenied):
            require_service(WRITE)
    with call_scope(principal=ADA), pytest.raises(PermissionDenied, match="only services"):
        require_service(WRITE)
    with call_scope(principal=METER):
        assert require_service(WRITE) is METER


def test_no_principal_is_unauthenticated() -> None:
    """Outside an authenticated call every rule refuses."""
    with pytest.raises(Unauthenticated):
        require_user_or("ada", READ)
