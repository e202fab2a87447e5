"""A migrated (plans seeded) SQLite Billing database per test, a fake clock, and Billing with
the test-mode payment provider settling at once (see ``plan_requests`` for paying)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.migrations import upgrade_database
from meshcore.testing import FakeClock
from zoptal_billing import MIGRATIONS_DIR
from zoptal_billing.payments_test_mode import TestModePaymentProvider
from zoptal_billing.service import BillingService

# 2026-11-10T00:00:00Z: mid-month, so tests can move within and across billing periods.
NOVEMBER_10 = 1_794_268_800.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_start=NOVEMBER_10)


@pytest.fixture
async def billing_db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'billing.db'}"
    await upgrade_database(url, MIGRATIONS_DIR)
    database = Database(url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def billing(billing_db: Database, clock: FakeClock) -> BillingService:
    payments = TestModePaymentProvider(billing_db, clock=clock, settle_seconds=0)
    return BillingService(billing_db, clock=clock, payments=payments)
