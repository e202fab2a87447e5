"""What a delivery provider is, and how it reports a failure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DeliveryError", "OutgoingMessage", "Provider"]


@dataclass(frozen=True)
class OutgoingMessage:
    notification_id: str
    channel: str
    recipient: str
    user_id: str = ""
    subject: str = ""
    body: str = ""
    body_html: str = ""
    data: Mapping[str, str] = field(default_factory=dict)


class DeliveryError(Exception):
    """A provider could not deliver; ``transient`` says whether another attempt may succeed.

    ``reason`` ends up in the notification's ``last_error``: say what the provider answered
    (an SMTP reply, an HTTP status), never a credential.
    """

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class Provider(Protocol):
    name: str

    async def send(self, message: OutgoingMessage) -> str:
        """Deliver ``message``; return the provider's message id; raise ``DeliveryError``."""
        ...

    async def close(self) -> None: ...
