"""The Celery worker entry point: ``celery -A zoptal_notification.worker worker``.

Importing this module reads the settings and builds the app, nothing more; each worker process
opens its own database pool and provider clients in ``worker_process_init`` and closes them
when it shuts down.
"""

from __future__ import annotations

from typing import Any

from celery import signals  # type: ignore[import-untyped]

from zoptal_notification.celery_app import create_celery_app
from zoptal_notification.runtime import configure_runtime, start_runtime, stop_runtime
from zoptal_notification.settings import NotificationSettings
from zoptal_notification.tasks import register_tasks
from zoptal_notification.worker_metrics import install_worker_metrics

__all__ = ["app", "settings"]

settings = NotificationSettings.from_env()
app = create_celery_app(settings)
deliver = register_tasks(app)
install_worker_metrics(app, settings)
configure_runtime(settings)


def _open_process_resources(**_: Any) -> None:
    start_runtime(settings)


def _close_process_resources(**_: Any) -> None:
    stop_runtime()


def _close_solo_resources(**_: Any) -> None:
    # The solo pool runs tasks in the main process, which gets no per-process signals.
    stop_runtime()


signals.worker_process_init.connect(_open_process_resources, weak=False)
signals.worker_process_shutdown.connect(_close_process_resources, weak=False)
signals.worker_shutdown.connect(_close_solo_resources, weak=False)
