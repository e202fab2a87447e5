"""Billing's input rules and who may call what, without a server."""

from __future__ import annotations

import pytest
from meshcore.context import Principal, call_scope
from meshcore.errors import InvalidArgument, PermissionDenied, Unauthenticated
from zoptal_billing import validation
from zoptal_billing.access import READ, WRITE, require_service, require_user_or
from zoptal_billing.metering import Metric

ADA = Principal(subject="ada", kind="user")
ADMIN = Principal(subject="root", kind="user", roles=frozenset({"admin"}))
METER = Principal(subject="project", kind="service", permissions=frozenset({READ, WRITE}))
READER = Principal(subject="report", kind="service", permissions=frozenset({READ}))


def test_quantity_must_be_non_zero_and_counters_cannot_be_released() -> None:
    """Zero is refused; a negative delta is a release, allowed only for gauges."""
    assert validation.quantity(Metric.PROJECTS, -1) == -1
    with pytest.raises(InvalidArgument, match="quantity"):
        validation.quantity(Metric.PROJECTS, 0)
    with pytest.raises(InvalidArgument, match="counter"):
        validation.quantity(Metric.API_CALLS, -5)


def test_scope_is_required_exactly_for_per_project_metrics() -> None:
    """Members need the project id as scope; user-wide metrics must not have one."""
    assert validation.scope_for(Metric.MEMBERS_PER_PROJECT, "p1") == "p1"
    with pytest.raises(InvalidArgument, match="scope_id"):
        validation.scope_for(Metric.MEMBERS_PER_PROJECT, "")
    with pytest.raises(InvalidArgument, match="scope_id"):
        validation.scope_for(Metric.PROJECTS, "p1")


def test_idempotency_key_alphabet_and_length() -> None:
    """Keys are 1..128 characters of A-Z a-z 0-9 . _ : -."""
    assert validation.idempotency_key("project:1.2_3-4") == "project:1.2_3-4"
    for bad in ("", "a b", "k" * 129, "ключ"):
        with pytest.raises(InvalidArgument, match="idempotency_key"):
            validation.idempotency_key(bad)


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
