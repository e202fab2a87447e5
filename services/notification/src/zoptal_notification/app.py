"""Builds the Notification server: database, Celery publisher, service, outbox relay, gRPC."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.observability.runtime_metrics import BacklogMonitor, table_backlog
from meshcore.server import ServiceRegistration, ShutdownHook
from meshcore.service_app import ServiceApp
from zoptal.clients.service_identity import PeerAccess
from zoptal.notification.v1 import notification_pb2_grpc

from zoptal_notification import MIGRATIONS_DIR
from zoptal_notification.celery_app import create_celery_app
from zoptal_notification.dispatch import CeleryDispatcher, OutboxRelay
from zoptal_notification.models import Notification, Status
from zoptal_notification.service import NotificationService
from zoptal_notification.servicer import NotificationServicer
from zoptal_notification.settings import NotificationSettings

__all__ = ["MIGRATIONS_DIR", "SERVICE_NAME", "NotificationApp"]

SERVICE_NAME = "zoptal.notification.v1.NotificationService"

logger = logging.getLogger(__name__)

_WAITING = (Status.QUEUED.value, Status.SENDING.value)
"""Deliveries not finished yet: stored and waiting for a worker, or being delivered."""


class NotificationApp(ServiceApp[NotificationSettings]):
    """Everything the gRPC process owns (``meshcore.service_app``).

    Auth is this service's only peer: tokens revoked there are polled (ListRevocations) and
    refused here on every call.
    """

    def __init__(self, settings: NotificationSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        database = Database(settings.database_url, application_name="notification")
        super().__init__(settings, database, peers=PeerAccess(settings, clock=clock), clock=clock)
        self.celery = create_celery_app(settings)
        self.dispatcher = CeleryDispatcher(self.celery, queue=settings.celery_queue)
        self.service = NotificationService(
            self.database,
            self.dispatcher,
            dispatch_grace=settings.outbox_dispatch_grace_seconds,
            redispatch_after=settings.outbox_redispatch_after_seconds,
            clock=clock,
        )
        self.relay = OutboxRelay(
            self.database,
            self.dispatcher,
            redispatch_after=settings.outbox_redispatch_after_seconds,
            interval=settings.outbox_relay_interval_seconds,
            clock=clock,
        )
        self.registrations = [
            ServiceRegistration(
                NotificationServicer(self.service),
                notification_pb2_grpc.add_NotificationServiceServicer_to_server,
                SERVICE_NAME,
            )
        ]
        # Queued and in-flight deliveries: the Celery backlog as the database sees it (a task
        # the broker lost still counts, until the relay hands it over again).
        self.backlog = BacklogMonitor(
            "notification_deliveries",
            table_backlog(
                self.database, Notification.created_at, Notification.status.in_(_WAITING)
            ),
        )
        self.background_loops = {
            "outbox-relay": self.relay.run,
            "delivery-backlog": self.backlog.run,
        }

    def releases(self) -> list[ShutdownHook]:
        """The broker publisher and the Celery app (blocking closes: off the event loop)."""
        return [
            partial(asyncio.to_thread, self.dispatcher.close),
            partial(asyncio.to_thread, self.celery.close),
        ]
