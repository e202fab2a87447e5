"""The Celery application, configured from ``NotificationSettings`` (one place for both sides).

The gRPC server builds one only to publish; the worker (``zoptal_notification.worker``) builds
one and registers the delivery task. Building it opens no connection.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from celery import Celery  # type: ignore[import-untyped]
from meshcore.private_files import private_directory, private_file

from zoptal_notification.settings import NotificationSettings

__all__ = ["create_celery_app"]

_SQLITE_BROKER_PREFIX = "sqla+sqlite:///"


def create_celery_app(settings: NotificationSettings) -> Celery:
    broker = settings.celery_broker_url
    transport_options: dict[str, Any] = {}
    if broker.startswith(_SQLITE_BROKER_PREFIX):
        # kombu creates the database file (0644 under the usual umask), not its folder: both
        # are made private here first, as meshcore.db does for the services' own databases.
        broker_file = Path(broker.removeprefix(_SQLITE_BROKER_PREFIX))
        private_directory(broker_file.parent, restrict_existing=False)
        private_file(broker_file)
        # These options go to SQLAlchemy's create_engine: the server's publisher and the worker
        # share the file, so wait for each other's write locks instead of failing at once.
        transport_options["connect_args"] = {"timeout": 15.0}
        # kombu's own table mapping (kombu 5.7, the latest) declares its queue-to-message
        # relationship lazy="noload", which SQLAlchemy 2.1 deprecates; the transport never reads
        # that relationship, and the warning is not ours to fix. Only that message is silenced.
        warnings.filterwarnings(
            "ignore",
            message=r"The ``noload`` loader strategy is deprecated",
            module=r"kombu\.transport\.sqlalchemy",
        )
    elif broker.startswith(("redis://", "rediss://")):
        transport_options["visibility_timeout"] = settings.celery_visibility_timeout_seconds
        transport_options["socket_connect_timeout"] = 3.0
    app = Celery("zoptal_notification", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A message is acknowledged only after its task returns: one a worker took and died
        # with is handed out again, so a delivery is never dropped by a crashed worker.
        task_acks_late=True,
        # With late acks a worker holding prefetched messages delays them if it dies; take one
        # at a time so the others stay in the broker for the healthy workers.
        worker_prefetch_multiplier=1,
        # Threads, not Celery's default prefork processes: a delivery waits on SMTP or a
        # webhook, and every prefork child would hold its own copy of the interpreter (about
        # 80 MiB each) and its own database pool.
        worker_pool="threads",
        worker_concurrency=settings.worker_threads,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3.0,
        broker_transport_options=transport_options,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app
