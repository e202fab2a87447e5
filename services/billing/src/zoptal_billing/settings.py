"""The Billing service's one settings object, read from the environment (docs/conventions.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from meshcore.settings import ServiceSettings

__all__ = ["BillingSettings"]


@dataclass(frozen=True, kw_only=True)
class BillingSettings(ServiceSettings):
    service_name: ClassVar[str] = "billing"
    peer_defaults: ClassVar[Mapping[str, str]] = {
        "auth": "127.0.0.1:4000",
        "notification": "127.0.0.1:4004",
    }

    grpc_port: int = 4003
    metrics_port: int = 9403

    notice_poll_seconds: float = 5.0
    """How often the threshold-email outbox is polled (it is also woken on every new notice)."""
    notice_max_backoff_seconds: float = 300.0
    """The longest wait between two attempts to send one email while Notification is down."""
    peer_timeout_ms: float = 5_000.0
    """Deadline of each call to Auth and Notification made by the background dispatcher."""
