"""NotificationServiceClient: email, SMS and push, queued durably and idempotent by key."""

from __future__ import annotations

from collections.abc import Mapping

from meshcore.client_manager import Metadata

from zoptal.clients.base import TypedClient
from zoptal.notification.v1 import notification_pb2

__all__ = ["NotificationServiceClient"]


class NotificationServiceClient(TypedClient):
    """Typed calls to ``zoptal.notification.v1.NotificationService``."""

    file_descriptor = notification_pb2.DESCRIPTOR
    service = "notification"
    grpc_service = "NotificationService"

    async def send_email(
        self,
        to: str,
        subject: str,
        body_text: str = "",
        *,
        idempotency_key: str,
        user_id: str = "",
        body_html: str = "",
        template: str = "",
        template_data: Mapping[str, str] | None = None,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> notification_pb2.SendEmailResponse:
        request = notification_pb2.SendEmailRequest(
            to=to,
            user_id=user_id,
            subject=subject,
            body_text=body_text,
            body_html=body_html,
            template=template,
            template_data=dict(template_data or {}),
            idempotency_key=idempotency_key,
        )
        return await self._call(
            "SendEmail", request, notification_pb2.SendEmailResponse, timeout_ms, metadata
        )

    async def send_sms(
        self,
        to: str,
        body: str,
        *,
        idempotency_key: str,
        user_id: str = "",
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> notification_pb2.SendSMSResponse:
        request = notification_pb2.SendSMSRequest(
            to=to, user_id=user_id, body=body, idempotency_key=idempotency_key
        )
        return await self._call(
            "SendSMS", request, notification_pb2.SendSMSResponse, timeout_ms, metadata
        )

    async def send_push_notification(
        self,
        user_id: str,
        title: str,
        body: str,
        *,
        idempotency_key: str,
        device_token: str = "",
        data: Mapping[str, str] | None = None,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> notification_pb2.SendPushNotificationResponse:
        request = notification_pb2.SendPushNotificationRequest(
            user_id=user_id,
            device_token=device_token,
            title=title,
            body=body,
            data=dict(data or {}),
            idempotency_key=idempotency_key,
        )
        return await self._call(
            "SendPushNotification",
            request,
            notification_pb2.SendPushNotificationResponse,
            timeout_ms,
            metadata,
        )

    async def get_notification_history(
        self,
        user_id: str,
        page: int = 1,
        limit: int = 20,
        *,
        channel: notification_pb2.Channel.ValueType = notification_pb2.CHANNEL_UNSPECIFIED,
        status: notification_pb2.NotificationStatus.ValueType = (
            notification_pb2.NOTIFICATION_STATUS_UNSPECIFIED
        ),
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> notification_pb2.GetNotificationHistoryResponse:
        request = notification_pb2.GetNotificationHistoryRequest(
            user_id=user_id, channel=channel, status=status, page=page, limit=limit
        )
        return await self._call(
            "GetNotificationHistory",
            request,
            notification_pb2.GetNotificationHistoryResponse,
            timeout_ms,
            metadata,
        )

    async def get_notification(
        self,
        notification_id: str,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> notification_pb2.GetNotificationResponse:
        request = notification_pb2.GetNotificationRequest(notification_id=notification_id)
        return await self._call(
            "GetNotification",
            request,
            notification_pb2.GetNotificationResponse,
            timeout_ms,
            metadata,
        )
