"""Project's integration fixtures: the whole mesh, Project and Billing each on their own PostgreSQL
database as deployed, Analytics a recording stand-in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import _admin
from tests.mesh import InProcessMesh, RecordingAnalytics, serve_mesh
from tests.requirements import require_reachable


@pytest.fixture
def billing_postgres_url() -> Iterator[str]:
    """Another fresh PostgreSQL database: Billing and Project each own theirs, as deployed."""
    require_reachable("PostgreSQL", "127.0.0.1", 5432)
    name = f"zoptal_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def analytics() -> RecordingAnalytics:
    return RecordingAnalytics()


@pytest.fixture
async def mesh(
    tmp_path: Path, postgres_url: str, billing_postgres_url: str, analytics: RecordingAnalytics
) -> AsyncIterator[InProcessMesh]:
    async with serve_mesh(
        tmp_path,
        {"project": postgres_url, "billing": billing_postgres_url},
        analytics=analytics,
        # Short, so a stopped Billing fails a create quickly (DEPENDENCY_UNAVAILABLE tests).
        project_settings={"billing_timeout_ms": 1_500.0},
    ) as running:
        yield running
