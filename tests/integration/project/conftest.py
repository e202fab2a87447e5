"""Project's integration fixtures: the whole mesh, Project and Billing each on their own PostgreSQL
database as deployed, Analytics a recording stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.mesh import InProcessMesh, RecordingAnalytics, serve_mesh
from tests.support import postgres_database


@pytest.fixture
def billing_postgres_url() -> Iterator[str]:
    """Another fresh PostgreSQL database: Billing and Project each own theirs, as deployed."""
    with postgres_database() as url:
        yield url


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
