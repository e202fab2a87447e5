"""Who may track and query analytics, and that the migrations build the models' schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from meshcore.context import Principal, call_scope
from meshcore.errors import PermissionDenied
from meshcore.migrations import alembic_config, run_migrations
from zoptal_analytics.access import own_user_id, require_reader, require_writer
from zoptal_analytics.app import MIGRATIONS_DIR

WRITER = Principal("project", "service", permissions=frozenset({"analytics:write"}))
READER = Principal("dash", "service", permissions=frozenset({"analytics:read"}))
ADA = Principal("ada", "user")
ADMIN = Principal("root", "user", roles=frozenset({"admin"}))


def test_writers_may_track_for_anyone() -> None:
    """A service with analytics:write keeps the user id it sent (even empty)."""
    with call_scope(principal=WRITER):
        assert own_user_id("bob") == "bob"
        assert own_user_id("") == ""


def test_a_user_tracks_only_their_own_events() -> None:
    """A user's event is theirs: empty means themself, someone else is refused."""
    with call_scope(principal=ADA):
        assert own_user_id("") == "ada"
        assert own_user_id("ada") == "ada"
        with pytest.raises(PermissionDenied):
            own_user_id("bob")


def test_batch_ingest_needs_a_writer_service() -> None:
    """TrackEvents/IngestEvents: analytics:write services or admins only."""
    with call_scope(principal=WRITER):
        require_writer()
    for principal in (ADA, READER):
        with call_scope(principal=principal), pytest.raises(PermissionDenied):
            require_writer()


@pytest.mark.parametrize(
    ("principal", "allowed"), [(READER, True), (ADMIN, True), (ADA, False), (WRITER, False)]
)
def test_queries_need_a_reader_service_or_an_admin(principal: Principal, allowed: bool) -> None:
    """GetAnalytics and GetRealTimeAnalytics are not for ordinary users."""
    with call_scope(principal=principal):
        if allowed:
            require_reader()
        else:
            with pytest.raises(PermissionDenied):
                require_reader()


def test_the_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    """alembic check finds nothing to generate after upgrade head."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    run_migrations(url, MIGRATIONS_DIR)
    command.check(alembic_config(url, MIGRATIONS_DIR))
