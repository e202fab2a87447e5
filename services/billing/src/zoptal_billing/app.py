"""Builds the Billing server: database, payment provider, domain service, the background work
(threshold-email dispatcher, plan-change settling), gRPC."""

from __future__ import annotations

import logging

from meshcore.client_manager import GrpcClientManager
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.completion import Completions
from meshcore.db import Database
from meshcore.observability.runtime_metrics import BacklogMonitor, table_backlog
from meshcore.server import ServiceRegistration, ShutdownHook
from meshcore.service_app import ServiceApp
from zoptal.billing.v1 import billing_pb2_grpc
from zoptal.clients import AuthServiceClient, NotificationServiceClient
from zoptal.clients.service_identity import PeerAccess

from zoptal_billing import MIGRATIONS_DIR
from zoptal_billing.gateways import NotificationNoticeSender
from zoptal_billing.models import ThresholdNoticeRow
from zoptal_billing.notices import NoticeSender, ThresholdNoticeDispatcher
from zoptal_billing.payment_provider import load_provider
from zoptal_billing.payments import PaymentProvider
from zoptal_billing.service import BillingService
from zoptal_billing.servicer import BillingServicer
from zoptal_billing.settings import BillingSettings

__all__ = ["MIGRATIONS_DIR", "SERVICE_NAME", "BillingApp"]

SERVICE_NAME = "zoptal.billing.v1.BillingService"

logger = logging.getLogger(__name__)


class BillingApp(ServiceApp[BillingSettings]):
    """Everything the Billing process owns (``meshcore.service_app``).

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
        # Billing's own token for its peers, and the tokens revoked through Auth (polled from
        # ListRevocations); neither when tests inject a sender: there is no Auth then.
        peers: PeerAccess | None = None
        if sender is None:
            peers = PeerAccess(settings, clock=clock, clients=clients)
            sender = NotificationNoticeSender(
                AuthServiceClient(peers.clients),
                NotificationServiceClient(peers.clients),
                timeout_ms=settings.peer_timeout_ms,
            )
        database = Database(settings.database_url, application_name="zoptal-billing")
        super().__init__(settings, database, peers=peers, clock=clock)
        self.dispatcher = ThresholdNoticeDispatcher(
            self.database,
            sender,
            clock=clock,
            poll_interval=settings.notice_poll_seconds,
            lease_seconds=settings.notice_lease_seconds,
            max_backoff=settings.notice_max_backoff_seconds,
        )
        self.payments = payments or load_provider(settings, self.database, clock)
        # RecordUsage finishes whatever its caller does; drained on shutdown, before the database.
        self.completions = Completions()
        self.service = BillingService(
            self.database,
            clock=clock,
            on_notice_queued=self.dispatcher.wake,
            payments=self.payments,
            change_poll_interval=settings.payment_reconcile_seconds,
            completions=self.completions,
        )
        self.registrations = [
            ServiceRegistration(
                BillingServicer(self.service),
                billing_pb2_grpc.add_BillingServiceServicer_to_server,
                SERVICE_NAME,
            )
        ]
        self.backlog = BacklogMonitor(
            "billing_threshold_notices",
            table_backlog(
                self.database,
                ThresholdNoticeRow.created_at,
                ThresholdNoticeRow.delivered_at.is_(None),
                ThresholdNoticeRow.abandoned_at.is_(None),
            ),
        )
        # Threshold emails, plan changes the provider decided or whose period ended.
        self.background_loops = {
            "billing-threshold-notices": self.dispatcher.run,
            "billing-plan-changes": self.service.changes.run,
            "billing-notice-backlog": self.backlog.run,
        }

    def start_background(self) -> None:
        if not self.running and self.payments.name == "test":
            logger.warning(
                "payments run in TEST MODE (PAYMENT_PROVIDER=test): no money moves; "
                "tokens tok_test_approve, tok_test_decline, tok_test_insufficient_funds"
            )
        super().start_background()

    def releases(self) -> list[ShutdownHook]:
        return [self.completions.finish, self.service.close]
