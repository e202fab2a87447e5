"""The Celery worker's delivery metrics and its Prometheus endpoint (``WORKER_METRICS_PORT``).

The worker runs Celery's thread pool (``celery_app``): every delivery runs in the worker's one
process, so its counts are in prometheus_client's default registry, which the endpoint serves
together with the standard ``process_*`` series (resident memory, CPU, open files).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final, Literal
from wsgiref.simple_server import WSGIServer

from celery import Celery, bootsteps  # type: ignore[import-untyped]
from prometheus_client import Counter, Histogram, start_http_server

from zoptal_notification.settings import NotificationSettings

__all__ = [
    "DELIVERIES",
    "DELIVERY_ATTEMPT_SECONDS",
    "DELIVERY_LATENCY_SECONDS",
    "DeliveryResult",
    "install_worker_metrics",
    "record_delivery",
]

logger = logging.getLogger(__name__)

DeliveryResult = Literal["sent", "retried", "failed", "skipped", "deferred"]
"""``sent``: the provider accepted it. ``retried``: the attempt failed and another is scheduled.
``failed``: permanently failed (a permanent provider error, or no attempt left). ``skipped``:
nothing to do (already finished, not due yet). ``deferred``: no attempt was made and the task
runs again later (another attempt holds the claim, or the database is unreachable)."""

UNKNOWN_CHANNEL: Final = "unknown"
"""The channel label when the notification was never read (the database was unreachable)."""

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


def _endpoint_step(host: str, port: int) -> type[bootsteps.StartStopStep]:
    """A worker bootstep serving ``/metrics`` once the pool runs; a port that cannot be bound
    fails the worker's start, as it does a server's."""

    class WorkerMetricsEndpoint(bootsteps.StartStopStep):  # type: ignore[misc]
        name = "zoptal_notification.worker_metrics.WorkerMetricsEndpoint"
        requires = ("celery.worker.components:Pool",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self._server: WSGIServer | None = None
            self._thread: threading.Thread | None = None

        def start(self, parent: Any) -> None:
            self._server, self._thread = start_http_server(port, addr=host)
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
    """Add the metrics endpoint to ``app``'s workers when ``WORKER_METRICS_PORT`` is set."""
    if settings.worker_metrics_port:
        app.steps["worker"].add(_endpoint_step(settings.grpc_host, settings.worker_metrics_port))
