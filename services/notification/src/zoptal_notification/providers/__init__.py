"""Delivery providers per channel: SMTP for email, a webhook or the log for SMS and push."""

from __future__ import annotations

from collections.abc import Mapping

from zoptal_notification.models import Channel
from zoptal_notification.providers.base import DeliveryError, OutgoingMessage, Provider
from zoptal_notification.providers.log import LogProvider
from zoptal_notification.providers.smtp import SmtpProvider
from zoptal_notification.providers.webhook import WebhookProvider
from zoptal_notification.settings import NotificationSettings

__all__ = [
    "DeliveryError",
    "LogProvider",
    "OutgoingMessage",
    "Provider",
    "SmtpProvider",
    "WebhookProvider",
    "build_providers",
]


def build_providers(settings: NotificationSettings) -> Mapping[str, Provider]:
    """One provider per channel; creates HTTP clients, so call it inside a worker process."""
    smtp = SmtpProvider(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        timeout=settings.smtp_timeout_seconds,
        starttls=settings.smtp_starttls,
        username=settings.smtp_username,
        password=settings.smtp_password,
    )
    providers: dict[str, Provider] = {Channel.EMAIL.value: smtp}
    for channel, url in (
        (Channel.SMS, settings.sms_webhook_url),
        (Channel.PUSH, settings.push_webhook_url),
    ):
        providers[channel.value] = (
            WebhookProvider(
                f"{channel.value}",
                url,
                timeout=settings.webhook_timeout_seconds,
                secret=settings.webhook_secret,
            )
            if url
            else LogProvider()
        )
    return providers
