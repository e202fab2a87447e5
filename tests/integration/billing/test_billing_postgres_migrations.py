"""Billing's Alembic migrations on the real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from meshcore.migrations import alembic_config, run_migrations
from zoptal_billing.migrate import MIGRATIONS_DIR

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
