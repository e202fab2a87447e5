"""A real Auth domain on a SQLite file per test, with a fake clock and cheap Argon2 parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshcore.context import Principal
from meshcore.migrations import upgrade_database
from meshcore.testing import FakeClock
from zoptal_auth.app import MIGRATIONS_DIR, AuthApp, build_app
from zoptal_auth.settings import AuthSettings

from tests.support import CHEAP_ARGON2

VALIDATOR = Principal(subject="gateway", kind="service", permissions=frozenset({"user:validate"}))
"""A caller that may validate anyone's token (ValidateToken's domain needs one)."""


@pytest.fixture
def settings(tmp_path: Path) -> AuthSettings:
    return AuthSettings(data_dir=tmp_path, auth_http_port=0, metrics_port=0, **CHEAP_ARGON2)


@pytest.fixture
async def app(settings: AuthSettings, clock: FakeClock) -> AsyncIterator[AuthApp]:
    await upgrade_database(settings.database_url, MIGRATIONS_DIR)
    built = await build_app(settings, clock=clock)
    try:
        yield built
    finally:
        await built.revocations.close()
        await built.database.dispose()
