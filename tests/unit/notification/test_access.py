"""Who may send and read notifications, and that the migrations build the models' schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from meshcore.context import Principal, call_scope
from meshcore.errors import PermissionDenied, Unauthenticated
from meshcore.migrations import alembic_config, run_migrations
from zoptal_notification.access import require_reader_of, require_sender
from zoptal_notification.app import MIGRATIONS_DIR

BILLING = Principal("billing", "service", permissions=frozenset({"notification:send"}))
READER = Principal("support", "service", permissions=frozenset({"notification:read"}))
ADA = Principal("ada", "user")
ADMIN = Principal("root", "user", roles=frozenset({"admin"}))


@pytest.mark.parametrize("principal", [BILLING, ADMIN])
def test_senders_are_services_with_the_permission_or_admins(principal: Principal) -> None:
    """notification:send on a service token, or the admin role, may send."""
    with call_scope(principal=principal):
        assert require_sender() is principal


@pytest.mark.parametrize(
    "principal",
    [ADA, READER, Principal("ada", "user", permissions=frozenset({"notification:send"}))],
)
def test_users_and_other_services_may_not_send(principal: Principal) -> None:
    """Users cannot send, even holding the permission: sends are service-to-service."""
    with call_scope(principal=principal), pytest.raises(PermissionDenied):
        require_sender()


def test_a_call_without_credentials_is_unauthenticated() -> None:
    """No principal in the call context is UNAUTHENTICATED, never an open door."""
    with call_scope(principal=None), pytest.raises(Unauthenticated):
        require_sender()


@pytest.mark.parametrize(
    ("principal", "allowed"), [(ADA, True), (READER, True), (ADMIN, True), (BILLING, False)]
)
def test_history_is_for_the_user_a_reader_or_an_admin(principal: Principal, allowed: bool) -> None:
    """Ada reads her own history; services need notification:read."""
    with call_scope(principal=principal):
        if allowed:
            require_reader_of("ada")
        else:
            with pytest.raises(PermissionDenied):
                require_reader_of("ada")


def test_a_user_may_not_read_another_users_history() -> None:
    """Ada cannot read Bob's notifications."""
    with call_scope(principal=ADA), pytest.raises(PermissionDenied):
        require_reader_of("bob")


def test_the_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    """alembic check finds nothing to generate after upgrade head."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'n.db'}"
    run_migrations(url, MIGRATIONS_DIR)
    command.check(alembic_config(url, MIGRATIONS_DIR))
