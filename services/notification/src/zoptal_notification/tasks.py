"""The Celery task that delivers one notification (the domain work is in ``delivery``)."""

from __future__ import annotations

import logging
import time

from celery import Celery, Task  # type: ignore[import-untyped]
from meshcore.errors import Unavailable
from opentelemetry import propagate, trace

from zoptal_notification.delivery import DeliveryOutcome
from zoptal_notification.dispatch import DELIVER_TASK_NAME
from zoptal_notification.runtime import current_runtime
from zoptal_notification.worker_metrics import DeliveryResult, record_delivery

__all__ = ["deliver_notification", "delivery_result", "register_tasks"]

logger = logging.getLogger(__name__)
# A no-op tracer unless the worker process configured tracing (OTEL_* set).
_tracer = trace.get_tracer("zoptal_notification.worker")

DATABASE_RETRY_SECONDS = 5.0


def deliver_notification(
    task: Task, notification_id: str, trace: dict[str, str] | None = None
) -> str:
    """Deliver one notification; ``trace`` carries the send RPC's trace context and request
    id (absent for outbox re-dispatches, which belong to no call)."""
    runtime = current_runtime()
    carrier = trace or {}
    attributes = {"notification.id": notification_id}
    if request_id := carrier.get("x-request-id"):
        attributes["request.id"] = request_id
    started = time.monotonic()
    try:
        with _tracer.start_as_current_span(
            "notification.deliver", context=propagate.extract(carrier), attributes=attributes
        ):
            outcome = runtime.run(runtime.delivery.deliver(notification_id))
    except Unavailable as exc:
        # The database is away: nothing was recorded, so the same message simply waits.
        logger.warning("database unavailable delivering %s; retrying", notification_id)
        record_delivery("deferred", None, time.monotonic() - started)
        raise task.retry(countdown=DATABASE_RETRY_SECONDS, max_retries=None, exc=exc) from exc
    record_delivery(
        delivery_result(outcome),
        outcome.channel,
        time.monotonic() - started,
        outcome.latency_seconds,
    )
    if outcome.kind == "retry":
        # The attempt count lives in the row; Celery's own counter must never stop a retry.
        raise task.retry(countdown=outcome.retry_in or 0.0, max_retries=None)
    logger.info(
        "notification %s: %s %s (request %s)",
        notification_id,
        outcome.kind,
        outcome.detail,
        carrier.get("x-request-id", "-"),
    )
    return outcome.kind


def delivery_result(outcome: DeliveryOutcome) -> DeliveryResult:
    """What the metrics call an outcome: a retry after a failed attempt is ``retried``, one
    that only waits for another attempt's claim is ``deferred``."""
    if outcome.kind == "retry":
        return "retried" if outcome.attempt_failed else "deferred"
    return outcome.kind


def register_tasks(app: Celery) -> Task:
    task: Task = app.task(
        name=DELIVER_TASK_NAME,
        bind=True,
        acks_late=True,
        ignore_result=True,
    )(deliver_notification)
    return task
