"""Billing against the real PostgreSQL: a fresh migrated database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from meshcore.db import Database
from meshcore.migrations import upgrade_database
from zoptal_billing import MIGRATIONS_DIR
from zoptal_billing.service import BillingService


@pytest.fixture
async def billing_pg(postgres_url: str) -> AsyncIterator[Database]:
    await upgrade_database(postgres_url, MIGRATIONS_DIR)
    database = Database(postgres_url, pool_size=10, max_overflow=10)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def billing(billing_pg: Database) -> AsyncIterator[BillingService]:
    """The service on ``billing_pg``; its read connections go back before the database closes."""
    service = BillingService(billing_pg)
    try:
        yield service
    finally:
        await service.close()
