"""gRPC endpoints of NotificationService: check access, call the service, build replies."""

from __future__ import annotations

from typing import TypeVar

import grpc
from meshcore.errors import InvalidArgument, NotFound, PermissionDenied
from meshcore.idempotency import caller_scope
from meshcore.timeutil import to_timestamp
from zoptal.notification.v1 import notification_pb2 as pb, notification_pb2_grpc

from zoptal_notification.access import require_reader_of, require_sender
from zoptal_notification.domain import EmailRequest, PushRequest, SmsRequest
from zoptal_notification.history_page import fit_history_page
from zoptal_notification.models import Channel, Notification, Status
from zoptal_notification.service import NotificationService, SendResult

__all__ = ["NotificationServicer"]

_CHANNEL_TO_PB = {
    Channel.EMAIL.value: pb.CHANNEL_EMAIL,
    Channel.SMS.value: pb.CHANNEL_SMS,
    Channel.PUSH.value: pb.CHANNEL_PUSH,
}
_CHANNEL_FROM_PB = {value: Channel(key) for key, value in _CHANNEL_TO_PB.items()}
# A delivery in progress is still QUEUED to clients: SENDING is an internal claim state.
_STATUS_TO_PB = {
    Status.QUEUED.value: pb.NOTIFICATION_STATUS_QUEUED,
    Status.SENDING.value: pb.NOTIFICATION_STATUS_QUEUED,
    Status.SENT.value: pb.NOTIFICATION_STATUS_SENT,
    Status.FAILED.value: pb.NOTIFICATION_STATUS_FAILED,
}
_STATUS_FROM_PB = {
    pb.NOTIFICATION_STATUS_QUEUED: Status.QUEUED,
    pb.NOTIFICATION_STATUS_SENT: Status.SENT,
    pb.NOTIFICATION_STATUS_FAILED: Status.FAILED,
}


def notification_to_pb(row: Notification) -> pb.Notification:
    message = pb.Notification(
        id=row.id,
        user_id=row.user_id,
        channel=_CHANNEL_TO_PB[row.channel],
        status=_STATUS_TO_PB[row.status],
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        template=row.template,
        idempotency_key=row.idempotency_key,
        attempts=row.attempts,
        last_error=row.last_error,
        provider_message_id=row.provider_message_id,
        created_at=to_timestamp(row.created_at),
        updated_at=to_timestamp(row.updated_at),
        sent_at=to_timestamp(row.sent_at),
    )
    if row.status == Status.QUEUED.value and row.attempts > 0:
        message.next_attempt_at.FromDatetime(row.next_attempt_at)
    return message


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, service: NotificationService) -> None:
        self._service = service

    async def _send(self, request: EmailRequest | SmsRequest | PushRequest) -> SendResult:
        caller = caller_scope(require_sender())
        return await self._service.send(request, caller=caller)

    async def SendEmail(
        self, request: pb.SendEmailRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.SendEmailResponse:
        result = await self._send(
            EmailRequest(
                to=request.to,
                user_id=request.user_id,
                subject=request.subject,
                body_text=request.body_text,
                body_html=request.body_html,
                template=request.template,
                template_data=dict(request.template_data),
                idempotency_key=request.idempotency_key,
            )
        )
        return _send_reply(pb.SendEmailResponse, result)

    async def SendSMS(
        self, request: pb.SendSMSRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.SendSMSResponse:
        result = await self._send(
            SmsRequest(
                to=request.to,
                user_id=request.user_id,
                body=request.body,
                idempotency_key=request.idempotency_key,
            )
        )
        return _send_reply(pb.SendSMSResponse, result)

    async def SendPushNotification(
        self,
        request: pb.SendPushNotificationRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.SendPushNotificationResponse:
        result = await self._send(
            PushRequest(
                user_id=request.user_id,
                device_token=request.device_token,
                title=request.title,
                body=request.body,
                data=dict(request.data),
                idempotency_key=request.idempotency_key,
            )
        )
        return _send_reply(pb.SendPushNotificationResponse, result)

    async def GetNotificationHistory(
        self,
        request: pb.GetNotificationHistoryRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.GetNotificationHistoryResponse:
        require_reader_of(request.user_id)
        channel = None
        if request.channel != pb.CHANNEL_UNSPECIFIED:
            if request.channel not in _CHANNEL_FROM_PB:
                raise InvalidArgument("channel", f"unknown channel {request.channel}")
            channel = _CHANNEL_FROM_PB[request.channel]
        status = None
        if request.status != pb.NOTIFICATION_STATUS_UNSPECIFIED:
            if request.status not in _STATUS_FROM_PB:
                raise InvalidArgument("status", f"unknown status {request.status}")
            status = _STATUS_FROM_PB[request.status]
        page = await self._service.history(
            request.user_id,
            channel=channel,
            status=status,
            page=request.page,
            limit=request.limit,
        )
        return pb.GetNotificationHistoryResponse(
            notifications=fit_history_page([notification_to_pb(row) for row in page.notifications]),
            total_count=page.total_count,
            page=page.page,
            limit=page.limit,
        )

    async def GetNotification(
        self,
        request: pb.GetNotificationRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.GetNotificationResponse:
        row = await self._service.get(request.notification_id)
        try:
            require_reader_of(row.user_id)
        except PermissionDenied:
            # Someone else's notification: do not reveal that it exists.
            raise NotFound("notification", request.notification_id) from None
        return pb.GetNotificationResponse(notification=notification_to_pb(row))


SendReply = TypeVar(
    "SendReply", pb.SendEmailResponse, pb.SendSMSResponse, pb.SendPushNotificationResponse
)


def _send_reply(reply_type: type[SendReply], result: SendResult) -> SendReply:
    return reply_type(
        notification_id=result.notification.id,
        status=_STATUS_TO_PB[result.notification.status],
        deduplicated=result.deduplicated,
    )
