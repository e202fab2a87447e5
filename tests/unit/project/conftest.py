"""A migrated SQLite Project database, the in-memory peers and the services under test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.migrations import upgrade_database
from meshcore.testing import FakeClock
from zoptal_project import MIGRATIONS_DIR
from zoptal_project.members import MembershipService
from zoptal_project.service import ProjectService
from zoptal_project.usage_outbox import UsageOutboxDispatcher

from tests.unit.project.project_fakes import FakeAnalytics, FakeBilling, FakeDirectory


@pytest.fixture
async def project_db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'project.db'}"
    await upgrade_database(url, MIGRATIONS_DIR)
    database = Database(url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def billing() -> FakeBilling:
    return FakeBilling()


@pytest.fixture
def analytics() -> FakeAnalytics:
    return FakeAnalytics()


@pytest.fixture
def outbox(project_db: Database, billing: FakeBilling, clock: FakeClock) -> UsageOutboxDispatcher:
    return UsageOutboxDispatcher(project_db, billing, clock=clock)


@pytest.fixture
def projects(
    project_db: Database, billing: FakeBilling, analytics: FakeAnalytics, clock: FakeClock
) -> ProjectService:
    return ProjectService(project_db, billing, analytics, clock=clock)


@pytest.fixture
def members(project_db: Database, billing: FakeBilling, clock: FakeClock) -> MembershipService:
    return MembershipService(project_db, billing, FakeDirectory(), clock=clock)
