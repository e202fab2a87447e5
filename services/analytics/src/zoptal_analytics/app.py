"""Builds the Analytics server: database, ingest buffer, real-time counters, gRPC."""

from __future__ import annotations

from collections.abc import Sequence

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.server import ServiceRegistration, ShutdownHook
from meshcore.service_app import ServiceApp
from zoptal.analytics.v1 import analytics_pb2_grpc
from zoptal.clients.service_identity import PeerAccess

from zoptal_analytics import MIGRATIONS_DIR
from zoptal_analytics.buffer import EventBuffer
from zoptal_analytics.domain import EventRecord
from zoptal_analytics.realtime import InProcessRealTime, RealTimeCounters
from zoptal_analytics.service import AnalyticsService
from zoptal_analytics.servicer import AnalyticsServicer
from zoptal_analytics.settings import AnalyticsSettings

__all__ = ["MIGRATIONS_DIR", "SERVICE_NAME", "AnalyticsApp"]

SERVICE_NAME = "zoptal.analytics.v1.AnalyticsService"


class AnalyticsApp(ServiceApp[AnalyticsSettings]):
    """Everything the gRPC process owns (``meshcore.service_app``).

    Auth is this service's only peer: tokens revoked there are polled (ListRevocations) and
    refused here on every call.
    """

    def __init__(self, settings: AnalyticsSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        database = Database(settings.database_url, application_name="analytics")
        super().__init__(settings, database, peers=PeerAccess(settings, clock=clock), clock=clock)
        self.realtime = _realtime_counters(settings, clock)

        async def write(events: Sequence[EventRecord]) -> Sequence[EventRecord]:
            return await self.service.write_batch(events)

        self.buffer = EventBuffer(
            write,
            max_batch_events=settings.ingest_batch_size,
            flush_interval=settings.ingest_flush_interval_seconds,
            max_pending_events=settings.ingest_max_pending_events,
            max_concurrent_flushes=(
                1 if self.database.is_sqlite else settings.ingest_max_concurrent_flushes
            ),
            on_committed=self.realtime.record,
            clock=clock,
        )
        self.service = AnalyticsService(self.database, self.buffer, self.realtime, clock=clock)
        self.registrations = [
            ServiceRegistration(
                AnalyticsServicer(self.service),
                analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
                SERVICE_NAME,
            )
        ]

    def start_background(self) -> None:
        """The peers, then the buffer's flusher (call from the running loop)."""
        super().start_background()
        self.buffer.start()

    def releases(self) -> list[ShutdownHook]:
        """Write every queued event, then release Redis.

        Runs after the server stopped taking calls and in-flight calls finished, so nothing
        new arrives while the last batches are written.
        """
        return [self.buffer.close, self.service.close, self.realtime.close]


def _realtime_counters(settings: AnalyticsSettings, clock: Clock) -> RealTimeCounters:
    """Shared through Redis when there is one; else in memory (without importing redis-py)."""
    if not settings.redis_url:
        return InProcessRealTime(clock)
    from zoptal_analytics.realtime_redis import RedisRealTime

    return RedisRealTime.from_url(
        settings.redis_url,
        prefix=settings.realtime_key_prefix,
        timeout=settings.realtime_redis_timeout_seconds,
        clock=clock,
    )
