"""Analytics integration helpers: the real server in-process, service tokens, settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshcore.migrations import upgrade_database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from zoptal.analytics.v1 import analytics_pb2_grpc
from zoptal_analytics.app import MIGRATIONS_DIR, AnalyticsApp
from zoptal_analytics.settings import AnalyticsSettings

from tests.mesh import serving
from tests.tokens import MINT, trusting_chain

CALLER = MINT.as_service("project", "analytics:write", "analytics:read")


async def direct_count(database_url: str, where: str = "true") -> int:
    """Events stored, counted straight in the database (``where`` is test-written SQL)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(text(f"SELECT count(*) FROM events WHERE {where}")))  # noqa: S608
    finally:
        await engine.dispose()


def make_settings(database_url: str, redis_url: str | None, **overrides: Any) -> AnalyticsSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "data_dir": Path("unused"),
        "rate_limit_max_requests": 1_000_000,
        "metrics_port": 0,
    }
    values.update(overrides)
    return AnalyticsSettings(**values)


@dataclass
class RunningAnalytics:
    stub: analytics_pb2_grpc.AnalyticsServiceAsyncStub
    app: AnalyticsApp


@contextlib.asynccontextmanager
async def running_analytics(settings: AnalyticsSettings) -> AsyncIterator[RunningAnalytics]:
    """Migrate, serve AnalyticsService on a real channel; leaving shuts down gracefully."""
    await upgrade_database(settings.database_url, MIGRATIONS_DIR)
    app = AnalyticsApp(settings)
    async with serving(app, trusting_chain(settings)) as served:
        yield RunningAnalytics(analytics_pb2_grpc.AnalyticsServiceStub(served.channel), app)
