"""The development provider for SMS and push: the message goes to the log, nowhere else."""

from __future__ import annotations

import logging

from zoptal_notification.providers.base import OutgoingMessage

__all__ = ["LogProvider"]

logger = logging.getLogger("zoptal_notification.delivered")


def _mask(recipient: str) -> str:
    """Phone numbers and device tokens are personal data: keep the last few characters."""
    return "*" * max(len(recipient) - 4, 0) + recipient[-4:]


class LogProvider:
    name = "log"

    async def send(self, message: OutgoingMessage) -> str:
        logger.info(
            "%s %s to %s (user %s): %d characters",
            message.channel,
            message.notification_id,
            _mask(message.recipient) or "all devices",
            message.user_id or "-",
            len(message.body),
        )
        return f"log:{message.notification_id}"

    async def close(self) -> None:
        return None
