"""Project's ports implemented over the typed meshcore clients (``zoptal.clients``).

The clients bring discovery, balancing, the breaker, retries where the proto allows them,
deadline propagation, trace context and the service token; this module only translates between
Project's vocabulary and the protos, and turns a peer's failure into the ``meshcore.errors``
exception Project's own caller should see.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from meshcore.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    MeshError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from meshcore.reasons import Reason
from meshcore.resilience.status import pushback_seconds, status_code_of
from meshcore.status_details import StatusDetails
from zoptal.billing.v1 import billing_pb2
from zoptal.clients import AnalyticsServiceClient, AuthServiceClient, BillingServiceClient

from zoptal_project.ports import BilledMetric, LimitAnswer

__all__ = ["GrpcAnalyticsGateway", "GrpcBillingGateway", "GrpcUserDirectory", "peer_error"]

_METRIC_TO_PB = {
    BilledMetric.PROJECTS: billing_pb2.METRIC_PROJECTS,
    BilledMetric.MEMBERS_PER_PROJECT: billing_pb2.METRIC_MEMBERS_PER_PROJECT,
}


def peer_error(error: BaseException, peer: str) -> MeshError:
    """What a failed call to ``peer`` means for our own caller.

    A peer's answer about the request itself (plan limit reached, key reused, not found) keeps
    its meaning; anything else (down, timed out, rate limited, refusing our credentials) is our
    dependency being unavailable: UNAVAILABLE, never UNKNOWN or INTERNAL. A plan limit is told
    from a rate limit (both RESOURCE_EXHAUSTED) by the peer's ``ErrorInfo`` reason, and keeps
    its reason and facts (metric, limit, plan) for our caller.
    """
    code = status_code_of(error)
    message = _details(error)
    said = error if isinstance(error, MeshError) else StatusDetails.of(error)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and said.reason == Reason.PLAN_LIMIT_REACHED:
        return ResourceExhausted(message, reason=said.reason, metadata=said.metadata)
    if code is grpc.StatusCode.ALREADY_EXISTS:
        return AlreadyExists(message)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(message)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(peer, message)
    if code is grpc.StatusCode.NOT_FOUND:
        return NotFound(peer, message)
    retry_after = pushback_seconds(error)
    return Unavailable.of_dependency(
        peer,
        f"{peer} is unavailable",
        retry_after=retry_after if retry_after and retry_after > 0 else 1.0,
    )


def _details(error: BaseException) -> str:
    if isinstance(error, MeshError):
        return error.message
    details = getattr(error, "details", None)
    text = details() if callable(details) else None
    return text or type(error).__name__


class GrpcBillingGateway:
    def __init__(self, client: BillingServiceClient, *, timeout_ms: float | None = None) -> None:
        self._client = client
        self._timeout_ms = timeout_ms

    async def check_limit(
        self, user_id: str, metric: BilledMetric, quantity: int, *, scope_id: str = ""
    ) -> LimitAnswer:
        try:
            reply = await self._client.check_subscription_limits(
                user_id,
                _METRIC_TO_PB[metric],
                quantity,
                scope_id=scope_id,
                timeout_ms=self._timeout_ms,
            )
        except Exception as error:
            raise peer_error(error, "billing") from error
        return LimitAnswer(
            allowed=reply.allowed,
            used=reply.current_usage,
            limit=None if reply.unlimited else reply.limit,
            plan_id=reply.plan_id,
        )

    async def record_usage(
        self,
        user_id: str,
        metric: BilledMetric,
        quantity: int,
        *,
        idempotency_key: str,
        scope_id: str = "",
        enforce_limit: bool = False,
    ) -> None:
        try:
            await self._client.record_usage(
                user_id,
                _METRIC_TO_PB[metric],
                quantity,
                idempotency_key,
                scope_id=scope_id,
                enforce_limit=enforce_limit,
                timeout_ms=self._timeout_ms,
            )
        except Exception as error:
            raise peer_error(error, "billing") from error


class GrpcAnalyticsGateway:
    def __init__(self, client: AnalyticsServiceClient, *, timeout_ms: float | None = None) -> None:
        self._client = client
        self._timeout_ms = timeout_ms

    async def track_event(
        self, user_id: str, name: str, properties: Mapping[str, str], *, event_id: str
    ) -> None:
        try:
            await self._client.track_event(
                name,
                user_id=user_id,
                properties=properties,
                event_id=event_id,
                timeout_ms=self._timeout_ms,
            )
        except Exception as error:
            raise peer_error(error, "analytics") from error


class GrpcUserDirectory:
    def __init__(self, client: AuthServiceClient, *, timeout_ms: float | None = None) -> None:
        self._client = client
        self._timeout_ms = timeout_ms

    async def user_exists(self, user_id: str) -> bool:
        try:
            reply = await self._client.get_user(user_id, timeout_ms=self._timeout_ms)
        except Exception as error:
            if status_code_of(error) is grpc.StatusCode.NOT_FOUND:
                return False
            raise peer_error(error, "auth") from error
        return not reply.user.disabled
