"""Per-process worker resources: an event loop, the database pool and the providers.

Deliveries run in Celery's thread pool (``celery_app``); their async work runs on one event
loop, in a thread of its own, so the pool's threads share one database pool and one set of
provider clients. Nothing here runs at import (``celery inspect`` imports the worker too): the
first task starts the runtime, and ``stop_runtime`` runs when the worker shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from meshcore.db import Database
from meshcore.observability.tracing import global_tracer_provider, shutdown_tracing

from zoptal_notification.delivery import DeliveryPolicy, DeliveryService
from zoptal_notification.providers import Provider, build_providers
from zoptal_notification.settings import NotificationSettings

__all__ = ["WorkerRuntime", "current_runtime", "start_runtime", "stop_runtime"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WorkerRuntime:
    """Tasks are synchronous in Celery; each one runs its async work on this process's loop,
    which runs in a thread of its own for as long as the runtime is open."""

    def __init__(self, settings: NotificationSettings) -> None:
        # The exporter's batching thread must belong to this process, not a forked parent.
        self.tracer_provider = global_tracer_provider("notification-worker")
        self.loop = asyncio.new_event_loop()
        self.database = Database(
            settings.database_url,
            pool_size=2,
            max_overflow=2,
            application_name="notification-worker",
        )
        self.providers: Mapping[str, Provider] = build_providers(settings)
        self.delivery = DeliveryService(
            self.database,
            self.providers,
            DeliveryPolicy(
                max_attempts=settings.delivery_max_attempts,
                backoff_base=settings.retry_backoff_seconds,
                backoff_cap=settings.retry_backoff_max_seconds,
                lease=settings.delivery_lease_seconds,
                redispatch_after=settings.outbox_redispatch_after_seconds,
            ),
        )
        # Started last: a runtime whose construction failed leaves no thread behind.
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="notification-worker-loop", daemon=True
        )
        self._loop_thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop and wait for its result (from any thread but the loop's).
        The calling thread's context (the task's trace span) goes with it."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def close(self) -> None:
        async def release() -> None:
            for provider in self.providers.values():
                await provider.close()
            await self.database.dispose()

        try:
            self.run(release())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join()
            self.loop.close()
            shutdown_tracing()  # flush the spans still buffered in this process


_runtime: WorkerRuntime | None = None
_settings: NotificationSettings | None = None


_starting = threading.Lock()  # the pool's threads may all ask for the runtime at once


def start_runtime(settings: NotificationSettings) -> WorkerRuntime:
    global _runtime, _settings
    with _starting:
        _settings = settings
        if _runtime is None:
            _runtime = WorkerRuntime(settings)
            logger.info("notification worker process ready (database %r)", _runtime.database)
        return _runtime


def current_runtime() -> WorkerRuntime:
    """The process's runtime, started on first use."""
    if _runtime is None:
        if _settings is None:
            raise RuntimeError("the worker runtime was never configured (start_runtime)")
        return start_runtime(_settings)
    return _runtime


def configure_runtime(settings: NotificationSettings) -> None:
    """Remember the settings without creating anything (safe in the parent before forking)."""
    global _settings
    _settings = settings


def stop_runtime() -> None:
    global _runtime
    with _starting:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()
        logger.info("notification worker process resources released")
