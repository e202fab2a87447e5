"""The Billing service's one settings object, read from the environment (docs/conventions.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from meshcore.settings import ServiceSettings, SettingsError

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
    notice_lease_seconds: float = 60.0
    """How long a replica holds a notice it is sending before another replica may take it
    over (it died mid-send)."""
    peer_timeout_ms: float = 5_000.0
    """Deadline of each call to Auth and Notification made by the background dispatcher."""

    def _validate(self) -> None:
        problems: list[str] = []
        for name in ("notice_poll_seconds", "notice_max_backoff_seconds", "peer_timeout_ms"):
            if getattr(self, name) <= 0:
                problems.append(f"{name.upper()}: must be positive")
        # Sending one notice is two calls in a row (Auth for the address, then Notification):
        # a lease shorter than both deadlines would let a second replica send a live one again.
        if self.notice_lease_seconds <= 2 * self.peer_timeout_ms / 1000:
            problems.append(
                "NOTICE_LEASE_SECONDS: must exceed twice PEER_TIMEOUT_MS, or a slow but live "
                "send could be taken over by another replica"
            )
        if problems:
            raise SettingsError("invalid billing settings: " + "; ".join(problems))
        super()._validate()
