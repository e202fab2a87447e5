"""``zoptal notify send|history``: NotificationService.

Sending is an operator's act: SendEmail, SendSMS and SendPushNotification require a service token
holding ``notification:send`` (or an admin user), so ``send`` acts with ``--service-token`` /
``--service-credentials`` when given, and says plainly when a user's own token is not enough.
"""

from __future__ import annotations

import uuid
from typing import Any

import click
import grpc

from zoptal_cli.output import emit, message_data
from zoptal_cli.session import Session, State, pass_state, run

__all__ = ["notify"]

NEEDS_OPERATOR = (
    "sending needs a service token with notification:send, or an admin user; {what}: set "
    "ZOPTAL_SERVICE_TOKEN (or --service-credentials credentials.json of such a service account)"
)


@click.group()
def notify() -> None:
    """Send notifications (operators) and read a user's notification history."""


@notify.command()
@click.option(
    "--channel", type=click.Choice(["email", "sms", "push"]), default="email", show_default=True
)
@click.option("--to", default="", help="Email address (email) or E.164 number (sms).")
@click.option("--user-id", default="", help="The recipient's user id (required for push).")
@click.option("--subject", default="", help="Email subject, or push title.")
@click.option("--body", default="", help="Plain-text body.")
@click.option(
    "--idempotency-key",
    default=None,
    help="Repeating a send with the same key returns the first notification (default: new).",
)
@pass_state
def send(
    state: State,
    channel: str,
    to: str,
    user_id: str,
    subject: str,
    body: str,
    idempotency_key: str | None,
) -> None:
    """Queue an email, SMS or push notification (delivered by the worker)."""
    key = idempotency_key or uuid.uuid4().hex

    async def action(session: Session) -> dict[str, Any]:
        metadata = await session.operator_metadata()
        notifications = session.clients.notification
        if channel == "email":
            reply: Any = await notifications.send_email(
                to, subject, body, user_id=user_id, idempotency_key=key, metadata=metadata
            )
        elif channel == "sms":
            reply = await notifications.send_sms(
                to, body, user_id=user_id, idempotency_key=key, metadata=metadata
            )
        else:
            reply = await notifications.send_push_notification(
                user_id, subject, body, idempotency_key=key, metadata=metadata
            )
        return {**message_data(reply), "idempotency_key": key}

    what = (
        "the service token given was refused"
        if state.service_token or state.service_credentials
        else "your user token is not enough"
    )
    hints = {grpc.StatusCode.PERMISSION_DENIED: NEEDS_OPERATOR.format(what=what)}
    emit(run(state, action, hints=hints), state.output)


@notify.command()
@click.option("--user", "user_id", default="", help="Another user (operator; default: you).")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@pass_state
def history(state: State, user_id: str, page: int, limit: int) -> None:
    """A user's notifications, newest first, with their delivery status."""

    async def action(session: Session) -> dict[str, Any]:
        if user_id:
            metadata = await session.operator_metadata()
            target = user_id
        else:
            metadata = await session.user_metadata()
            target = (await session.login()).user_id
        reply = await session.clients.notification.get_notification_history(
            target, page, limit, metadata=metadata
        )
        return message_data(reply)

    data = run(state, action)
    if state.output == "json":
        emit(data, state.output)
        return
    emit(
        data["notifications"],
        state.output,
        columns=["id", "channel", "recipient", "status", "attempts", "created_at"],
    )
