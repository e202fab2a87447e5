"""Builds the Billing server: database, payment provider, domain service, the background work
(threshold-email dispatcher, plan-change settling), gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Unpack

import grpc
from meshcore.client_manager import GrpcClientManager
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.interceptors.chain import ChainOverrides, service_chain
from meshcore.observability.runtime_metrics import BacklogMonitor, table_backlog
from meshcore.revocation import RevocationFeed
from meshcore.server import MeshServer, ServiceRegistration
from zoptal.billing.v1 import billing_pb2_grpc
from zoptal.clients import AuthServiceClient, NotificationServiceClient
from zoptal.clients.service_identity import PeerAccess

from zoptal_billing.migrate import MIGRATIONS_DIR
from zoptal_billing.models import ThresholdNoticeRow
from zoptal_billing.notices import NoticeSender, ThresholdNoticeDispatcher
from zoptal_billing.payment_provider import load_provider
from zoptal_billing.payments import PaymentProvider
from zoptal_billing.peers import NotificationNoticeSender
from zoptal_billing.service import BillingService
from zoptal_billing.servicer import BillingServicer
from zoptal_billing.settings import BillingSettings

__all__ = ["MIGRATIONS_DIR", "SERVICE_NAME", "BillingApp"]

SERVICE_NAME = "zoptal.billing.v1.BillingService"

logger = logging.getLogger(__name__)


class BillingApp:
    """Everything the Billing process owns. Constructing it opens no connection.

    ``sender`` replaces the gRPC notice sender (tests); by default Billing reaches Auth and
    Notification through a ``GrpcClientManager`` carrying its service token. ``payments``
    replaces the provider ``PAYMENT_PROVIDER`` names (tests).
    """

    def __init__(
        self,
        settings: BillingSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sender: NoticeSender | None = None,
        clients: GrpcClientManager | None = None,
        payments: PaymentProvider | None = None,
    ) -> None:
        self.settings = settings
        self.database = Database(settings.database_url, application_name="zoptal-billing")
        self.clients: GrpcClientManager | None = None
        # Billing's own token for its peers, and the tokens revoked through Auth (polled from
        # ListRevocations); neither when tests inject a sender: there is no Auth then.
        self.peers: PeerAccess | None = None
        self.revocations: RevocationFeed | None = None
        if sender is None:
            self.peers = PeerAccess(settings, clock=clock, clients=clients)
            self.clients = self.peers.clients
            self.revocations = self.peers.revocations
            sender = NotificationNoticeSender(
                AuthServiceClient(self.clients),
                NotificationServiceClient(self.clients),
                timeout_ms=settings.peer_timeout_ms,
            )
        self.dispatcher = ThresholdNoticeDispatcher(
            self.database,
            sender,
            clock=clock,
            poll_interval=settings.notice_poll_seconds,
            lease_seconds=settings.notice_lease_seconds,
            max_backoff=settings.notice_max_backoff_seconds,
        )
        self.payments = payments or load_provider(settings, self.database, clock)
        self.service = BillingService(
            self.database,
            clock=clock,
            on_notice_queued=self.dispatcher.wake,
            payments=self.payments,
            change_poll_interval=settings.payment_reconcile_seconds,
        )
        self.registrations = [
            ServiceRegistration(
                BillingServicer(self.service),
                billing_pb2_grpc.add_BillingServiceServicer_to_server,
                SERVICE_NAME,
            )
        ]
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self.backlog = BacklogMonitor(
            "billing_threshold_notices",
            table_backlog(
                self.database,
                ThresholdNoticeRow.created_at,
                ThresholdNoticeRow.delivered_at.is_(None),
                ThresholdNoticeRow.abandoned_at.is_(None),
            ),
        )

    def interceptors(self, **test: Unpack[ChainOverrides]) -> list[grpc.aio.ServerInterceptor]:
        """meshcore's production chain, refusing revoked tokens."""
        return service_chain(self.settings, self.revocations, clock=self._clock, **test)

    def start_background(self) -> None:
        """Start polling revocations, delivering threshold emails and settling plan changes
        (payments the provider decided, downgrades whose period ended), inside the loop."""
        if self.peers is not None:
            self.peers.start()
        if not self._tasks:
            if self.payments.name == "test":
                logger.warning(
                    "payments run in TEST MODE (PAYMENT_PROVIDER=test): no money moves; "
                    "tokens tok_test_approve, tok_test_decline, tok_test_insufficient_funds"
                )
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self.dispatcher.run(), name="billing-threshold-notices"),
                loop.create_task(self.service.changes.run(), name="billing-plan-changes"),
                loop.create_task(self.backlog.run(), name="billing-notice-backlog"),
            ]

    async def close(self) -> None:
        """Stop the background work, close peer channels and the database (a shutdown hook)."""
        if self.peers is not None:
            await self.peers.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.clients is not None:
            await self.clients.close()
        await self.service.close()
        await self.database.dispose()

    def server(self) -> MeshServer:
        return MeshServer(
            self.settings,
            self.registrations,
            interceptors=self.interceptors(),
            dependency_checks={"database": self.database.ping},
            on_shutdown=[self.close],
            clock=self._clock,
        )

    async def serve(self) -> None:
        """Serve until SIGTERM/SIGINT, delivering threshold emails in the background."""
        server = self.server()
        self.start_background()
        await server.serve()
