"""The Celery worker's delivery metrics and its Prometheus endpoint (``WORKER_METRICS_PORT``).

The worker runs Celery's thread pool (``celery_app``), but may be run with the prefork pool,
whose deliveries run in child processes while only the main process lives for the whole run and
can hold a port. A counter in a child's memory is invisible to the main process, so the counts
are kept in prometheus_client's multiprocess mode: every process writes its samples to
memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and the main process's endpoint sums them
(``MultiProcessCollector``). Counting in the main process instead would need
Celery's internal request callbacks, which see only the repr of a task's return value, not the
channel or the outcome's detail; the files work the same for the prefork, solo and thread pools.

prometheus_client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, so the variable
must be in the worker's environment from the start (the image sets it; the launcher too): it
cannot be switched on from here. The main process empties the folder when the worker starts, so
a restarted worker does not add up the files of the processes of its previous run.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Final, Literal
from wsgiref.simple_server import WSGIServer

from celery import Celery, bootsteps, signals  # type: ignore[import-untyped]
from meshcore.private_files import private_directory
from meshcore.settings import SettingsError
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from zoptal_notification.settings import NotificationSettings

__all__ = [
    "DELIVERIES",
    "DELIVERY_ATTEMPT_SECONDS",
    "DELIVERY_LATENCY_SECONDS",
    "MULTIPROC_DIR_VARIABLE",
    "DeliveryResult",
    "install_worker_metrics",
    "record_delivery",
]

logger = logging.getLogger(__name__)

MULTIPROC_DIR_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"

DeliveryResult = Literal["sent", "retried", "failed", "skipped", "deferred"]
"""``sent``: the provider accepted it. ``retried``: the attempt failed and another is scheduled.
``failed``: permanently failed (a permanent provider error, or no attempt left). ``skipped``:
nothing to do (already finished, not due yet). ``deferred``: no attempt was made and the task
runs again later (another attempt holds the claim, or the database is unreachable)."""

UNKNOWN_CHANNEL: Final = "unknown"
"""The channel label when the notification was never read (the database was unreachable)."""

# Labelled families create their per-process files only when a label set is first used, so a
# process that imports this module and delivers nothing (``celery inspect ping``) writes none.
DELIVERIES = Counter(
    "zoptal_notification_deliveries",
    "Delivery tasks run by the Celery worker, by what came of them and by channel.",
    ["outcome", "channel"],
)
DELIVERY_ATTEMPT_SECONDS = Histogram(
    "zoptal_notification_delivery_attempt_seconds",
    "How long one delivery task took (claim, provider call, recording the outcome).",
    ["outcome", "channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DELIVERY_LATENCY_SECONDS = Histogram(
    "zoptal_notification_delivery_latency_seconds",
    "From a notification's creation (the send RPC) until its provider accepted it, retries "
    "included.",
    ["channel"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)


def record_delivery(
    outcome: DeliveryResult,
    channel: str | None,
    attempt_seconds: float,
    latency_seconds: float | None = None,
) -> None:
    """Count one delivery task; ``latency_seconds`` (creation to sent) only for ``sent``."""
    label = channel or UNKNOWN_CHANNEL
    DELIVERIES.labels(outcome, label).inc()
    DELIVERY_ATTEMPT_SECONDS.labels(outcome, label).observe(attempt_seconds)
    if latency_seconds is not None:
        DELIVERY_LATENCY_SECONDS.labels(label).observe(max(latency_seconds, 0.0))


def _multiproc_dir() -> Path:
    folder = os.environ.get(MULTIPROC_DIR_VARIABLE, "")
    if not folder:
        raise SettingsError(
            f"WORKER_METRICS_PORT: the worker's metrics need {MULTIPROC_DIR_VARIABLE} (a folder "
            "the worker may empty) in its environment: deliveries run in Celery's pool processes"
        )
    return Path(folder)


def _empty(folder: Path) -> None:
    """Remove what a previous run left, keep the folder (it may be a mounted volume)."""
    private_directory(folder)
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _endpoint_step(folder: Path, host: str, port: int) -> type[bootsteps.StartStopStep]:
    """A worker bootstep serving ``/metrics`` from the worker's main process once the pool
    runs; a port that cannot be bound fails the worker's start, as it does a server's."""

    class WorkerMetricsEndpoint(bootsteps.StartStopStep):  # type: ignore[misc]
        name = "zoptal_notification.worker_metrics.WorkerMetricsEndpoint"
        requires = ("celery.worker.components:Pool",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self._server: WSGIServer | None = None
            self._thread: threading.Thread | None = None

        def start(self, parent: Any) -> None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
            logger.info("notification worker metrics on %s:%d", host, self._server.server_port)

        def stop(self, parent: Any) -> None:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None

    return WorkerMetricsEndpoint


def install_worker_metrics(app: Celery, settings: NotificationSettings) -> None:
    """Add the metrics endpoint to ``app``'s workers when ``WORKER_METRICS_PORT`` is set.

    Checked here, at import: a worker asked for metrics without the folder refuses to start,
    naming both variables, instead of serving counts that miss every pool process."""
    if not settings.worker_metrics_port:
        return
    folder = _multiproc_dir()

    def empty_before_the_pool_starts(**_: Any) -> None:
        # worker_init runs in the main process of `celery worker` only (not in `celery
        # inspect`, which imports the same module), before any pool process exists.
        _empty(folder)

    signals.worker_init.connect(empty_before_the_pool_starts, weak=False)
    app.steps["worker"].add(
        _endpoint_step(folder, settings.grpc_host, settings.worker_metrics_port)
    )
