"""Project's integration fixtures: a second PostgreSQL database (Billing's) for the same test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import _admin
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
