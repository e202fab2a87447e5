"""Billing's calls to its peers through the typed meshcore clients.

``NotificationNoticeSender`` delivers a threshold notice: Auth.GetUser for the address, then
Notification.SendEmail with the notice's own idempotency key, so a retried send is deduplicated
by Notification.
"""

from __future__ import annotations

import grpc
from meshcore.resilience.status import status_code_of
from zoptal.clients import AuthServiceClient, NotificationServiceClient

from zoptal_billing.notices import PermanentDeliveryError, ThresholdNotice, compose_email

__all__ = ["NotificationNoticeSender"]

# Answers that will not change however often the same notice is retried.
_PERMANENT_CODES = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT})


class NotificationNoticeSender:
    def __init__(
        self,
        auth: AuthServiceClient,
        notification: NotificationServiceClient,
        *,
        timeout_ms: float = 5_000.0,
    ) -> None:
        self._auth = auth
        self._notification = notification
        self._timeout_ms = timeout_ms

    async def send(self, notice: ThresholdNotice) -> None:
        try:
            user = (await self._auth.get_user(notice.user_id, timeout_ms=self._timeout_ms)).user
            if user.disabled:
                raise PermanentDeliveryError(f"user {notice.user_id!r} is disabled")
            subject, body = compose_email(notice)
            await self._notification.send_email(
                user.email,
                subject,
                body,
                idempotency_key=notice.idempotency_key,
                user_id=notice.user_id,
                timeout_ms=self._timeout_ms,
            )
        except PermanentDeliveryError:
            raise
        except Exception as error:
            if status_code_of(error) in _PERMANENT_CODES:
                raise PermanentDeliveryError(f"{type(error).__name__}: {error}") from error
            raise
