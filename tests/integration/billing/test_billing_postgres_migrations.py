"""Billing's Alembic migrations on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from meshcore.db import Database
from meshcore.migrations import alembic_config, run_migrations
from zoptal_billing import MIGRATIONS_DIR
from zoptal_billing.domain import UsageRequest
from zoptal_billing.metering import Metric
from zoptal_billing.service import BillingService

pytestmark = pytest.mark.postgres


async def test_migrations_create_the_models_schema_and_downgrade_cleanly(
    postgres_url: str,
) -> None:
    """upgrade head leaves nothing for autogenerate to add; downgrade base and back works."""

    def exercise() -> None:
        run_migrations(postgres_url, MIGRATIONS_DIR)
        config = alembic_config(postgres_url, MIGRATIONS_DIR)
        command.check(config)  # raises if the models and the migrated schema differ
        command.downgrade(config, "base")
        run_migrations(postgres_url, MIGRATIONS_DIR)

    await asyncio.to_thread(exercise)


async def test_usage_recorded_before_0002_replays_for_any_caller(postgres_url: str) -> None:
    """A record stored under revision 0001 (no caller) keeps its key after the upgrade: a
    retry straddling the deployment is a replay, never a second count."""

    def to_0001() -> None:
        command.upgrade(alembic_config(postgres_url, MIGRATIONS_DIR), "0001")

    await asyncio.to_thread(to_0001)
    database = Database(postgres_url)
    try:
        async with database.session() as session:
            await session.execute(
                sa.text(
                    "INSERT INTO usage_records (id, user_id, idempotency_key, metric, scope_id, "
                    "quantity, period, recorded_at) VALUES ('r1', 'ada', 'p-1', 'projects', '', "
                    "1, :period, :at)"
                ),
                {"period": datetime.now(UTC).strftime("%Y-%m"), "at": datetime.now(UTC)},
            )
            await session.execute(
                sa.text(
                    "INSERT INTO usage_totals (user_id, metric, scope_id, period, used, "
                    "updated_at) VALUES ('ada', 'projects', '', 'gauge', 1, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
        await asyncio.to_thread(run_migrations, postgres_url, MIGRATIONS_DIR)
        billing = BillingService(database)
        try:
            outcome = await billing.record_usage(
                UsageRequest(
                    user_id="ada",
                    metric=Metric.PROJECTS,
                    quantity=1,
                    idempotency_key="p-1",
                    caller="service:project",
                )
            )
        finally:
            await billing.close()
        assert (outcome.replayed, outcome.record.id, outcome.usage.used) == (True, "r1", 1)
    finally:
        await database.dispose()
