"""Builds the Notification server: database, Celery publisher, service, outbox relay, gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Unpack

import grpc
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.interceptors.chain import ChainOverrides, service_chain
from meshcore.observability.runtime_metrics import BacklogMonitor, table_backlog
from meshcore.server import MeshServer, ServiceRegistration
from zoptal.clients.service_identity import PeerAccess
from zoptal.notification.v1 import notification_pb2_grpc

from zoptal_notification.celery_app import create_celery_app
from zoptal_notification.dispatch import CeleryDispatcher, OutboxRelay
from zoptal_notification.models import Notification, Status
from zoptal_notification.service import NotificationService
from zoptal_notification.servicer import NotificationServicer
from zoptal_notification.settings import NotificationSettings

__all__ = ["MIGRATIONS_DIR", "SERVICE_NAME", "NotificationApp"]

SERVICE_NAME = "zoptal.notification.v1.NotificationService"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

logger = logging.getLogger(__name__)

_WAITING = (Status.QUEUED.value, Status.SENDING.value)
"""Deliveries not finished yet: stored and waiting for a worker, or being delivered."""


class NotificationApp:
    """Everything the gRPC process owns. Constructing it opens no connection."""

    def __init__(self, settings: NotificationSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.database = Database(settings.database_url, application_name="notification")
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
        # Auth is this service's only peer: tokens revoked there are polled (ListRevocations)
        # and refused here on every call.
        self.peers = PeerAccess(settings, clock=clock)
        self.clients = self.peers.clients
        self.revocations = self.peers.revocations
        self._clock = clock
        self.registrations = [
            ServiceRegistration(
                NotificationServicer(self.service),
                notification_pb2_grpc.add_NotificationServiceServicer_to_server,
                SERVICE_NAME,
            )
        ]
        self._relay_task: asyncio.Task[None] | None = None
        # Queued and in-flight deliveries: the Celery backlog as the database sees it (a task
        # the broker lost still counts, until the relay hands it over again).
        self.backlog = BacklogMonitor(
            "notification_deliveries",
            table_backlog(
                self.database, Notification.created_at, Notification.status.in_(_WAITING)
            ),
        )
        self._backlog_task: asyncio.Task[None] | None = None

    def start_background(self) -> None:
        """Start polling revocations and the outbox relay (call from the running event loop)."""
        self.peers.start()
        if self._relay_task is None:
            self._relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
        if self._backlog_task is None:
            self._backlog_task = asyncio.create_task(self.backlog.run(), name="delivery-backlog")

    async def close(self) -> None:
        """Stop the relay and the revocation poll, then release the publisher, peers and pool."""
        await self.peers.stop()
        for task in (self._relay_task, self._backlog_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._relay_task = self._backlog_task = None
        await asyncio.to_thread(self.dispatcher.close)
        await asyncio.to_thread(self.celery.close)
        await self.clients.close()
        await self.database.dispose()

    def interceptors(self, **test: Unpack[ChainOverrides]) -> list[grpc.aio.ServerInterceptor]:
        """meshcore's production chain, refusing revoked tokens."""
        return service_chain(self.settings, self.revocations, clock=self._clock, **test)

    def build_server(
        self, interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None
    ) -> MeshServer:
        return MeshServer(
            self.settings,
            self.registrations,
            interceptors=interceptors,
            dependency_checks={"database": self.database.ping},
            on_shutdown=[self.close],
        )
