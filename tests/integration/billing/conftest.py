"""Billing against the real PostgreSQL: a fresh migrated database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from meshcore.db import Database
from zoptal_billing.migrate import upgrade


@pytest.fixture
async def billing_pg(postgres_url: str) -> AsyncIterator[Database]:
    await upgrade(postgres_url)
    database = Database(postgres_url, pool_size=10, max_overflow=10)
    try:
        yield database
    finally:
        await database.dispose()
