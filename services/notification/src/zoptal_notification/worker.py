"""The Celery worker entry point: ``celery -A zoptal_notification.worker worker``.

Importing this module reads the settings and builds the app, nothing more (``celery inspect``
imports it too): the worker opens its database pool and provider clients on its first task and
closes them when it shuts down.
"""

from __future__ import annotations

from typing import Any

from celery import signals  # type: ignore[import-untyped]

from zoptal_notification.celery_app import create_celery_app
from zoptal_notification.runtime import configure_runtime, stop_runtime
from zoptal_notification.settings import NotificationSettings
from zoptal_notification.tasks import register_tasks
from zoptal_notification.worker_metrics import install_worker_metrics

__all__ = ["app", "settings"]

settings = NotificationSettings.from_env()
app = create_celery_app(settings)
deliver = register_tasks(app)
install_worker_metrics(app, settings)
configure_runtime(settings)


def _close_runtime(**_: Any) -> None:
    stop_runtime()


signals.worker_shutdown.connect(_close_runtime, weak=False)
