"""BillingServiceClient: subscriptions, limits and idempotent usage metering."""

from __future__ import annotations

from meshcore.client_manager import Metadata

from zoptal.billing.v1 import billing_pb2
from zoptal.clients.base import TypedClient

__all__ = ["BillingServiceClient"]


class BillingServiceClient(TypedClient):
    """Typed calls to ``zoptal.billing.v1.BillingService``."""

    file_descriptor = billing_pb2.DESCRIPTOR
    service = "billing"
    grpc_service = "BillingService"

    async def get_user_subscription(
        self, user_id: str, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> billing_pb2.GetUserSubscriptionResponse:
        request = billing_pb2.GetUserSubscriptionRequest(user_id=user_id)
        return await self._call(
            "GetUserSubscription",
            request,
            billing_pb2.GetUserSubscriptionResponse,
            timeout_ms,
            metadata,
        )

    async def check_subscription_limits(
        self,
        user_id: str,
        metric: billing_pb2.Metric.ValueType,
        quantity: int = 1,
        *,
        scope_id: str = "",
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> billing_pb2.CheckSubscriptionLimitsResponse:
        """Advisory check; ``record_usage(enforce_limit=True)`` is the atomic one."""
        request = billing_pb2.CheckSubscriptionLimitsRequest(
            user_id=user_id, metric=metric, quantity=quantity, scope_id=scope_id
        )
        return await self._call(
            "CheckSubscriptionLimits",
            request,
            billing_pb2.CheckSubscriptionLimitsResponse,
            timeout_ms,
            metadata,
        )

    async def record_usage(
        self,
        user_id: str,
        metric: billing_pb2.Metric.ValueType,
        quantity: int,
        idempotency_key: str,
        *,
        scope_id: str = "",
        enforce_limit: bool = False,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> billing_pb2.RecordUsageResponse:
        """Record usage once per ``idempotency_key`` (so retries never double count)."""
        request = billing_pb2.RecordUsageRequest(
            user_id=user_id,
            metric=metric,
            quantity=quantity,
            idempotency_key=idempotency_key,
            scope_id=scope_id,
            enforce_limit=enforce_limit,
        )
        return await self._call(
            "RecordUsage", request, billing_pb2.RecordUsageResponse, timeout_ms, metadata
        )

    async def get_subscription_plans(
        self, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> billing_pb2.GetSubscriptionPlansResponse:
        request = billing_pb2.GetSubscriptionPlansRequest()
        return await self._call(
            "GetSubscriptionPlans",
            request,
            billing_pb2.GetSubscriptionPlansResponse,
            timeout_ms,
            metadata,
        )

    async def change_subscription(
        self,
        user_id: str,
        plan_id: str,
        *,
        payment_token: str = "",
        complimentary: bool = False,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> billing_pb2.ChangeSubscriptionResponse:
        """Ask for a plan change: an upgrade needs ``payment_token`` and stays
        ``latest_change`` AWAITING_PAYMENT until the provider confirms it (poll
        ``get_user_subscription``); a downgrade is SCHEDULED for the period's end."""
        request = billing_pb2.ChangeSubscriptionRequest(
            user_id=user_id,
            plan_id=plan_id,
            payment_token=payment_token,
            complimentary=complimentary,
        )
        return await self._call(
            "ChangeSubscription",
            request,
            billing_pb2.ChangeSubscriptionResponse,
            timeout_ms,
            metadata,
        )
