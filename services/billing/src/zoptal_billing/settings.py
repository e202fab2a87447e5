"""The Billing service's one settings object, read from the environment (docs/conventions.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from meshcore.message_size import KiB
from meshcore.settings import ServiceSettings, SettingsError

__all__ = ["BillingSettings"]

_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True, kw_only=True)
class BillingSettings(ServiceSettings):
    service_name: ClassVar[str] = "billing"
    largest_request_bytes: ClassVar[int] = 4 * KiB
    """The largest request the API allows, encoded (ChangeSubscription: ids and a payment token);
    tests/message_bounds.py computes it."""
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

    payment_provider: str = ""
    """Who takes payments for paid plans (``payments.py``): ``test`` (the TEST MODE provider,
    refused in production), ``none`` (paid plans cannot be bought; admins may grant them) or
    ``package.module:factory`` (an adapter the operator plugs in). Empty: ``test`` in
    development, ``none`` in production."""
    payment_test_settle_seconds: float = 1.0
    """Test mode: how long a payment stays pending before its token's outcome is reported (the
    asynchronous confirmation of a real provider); 0 settles at once."""
    payment_reconcile_seconds: float = 2.0
    """How often the background pass asks the provider about payments still pending and puts
    in force the downgrades whose period has ended."""

    @property
    def resolved_payment_provider(self) -> str:
        if self.payment_provider:
            return self.payment_provider
        return "none" if self.is_production else "test"

    def _validate(self) -> None:
        problems: list[str] = []
        for name in (
            "notice_poll_seconds",
            "notice_max_backoff_seconds",
            "peer_timeout_ms",
            "payment_reconcile_seconds",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name.upper()}: must be positive")
        if self.payment_test_settle_seconds < 0:
            problems.append("PAYMENT_TEST_SETTLE_SECONDS: must be 0 or more")
        provider = self.payment_provider
        if provider not in ("", "test", "none") and not _FACTORY.fullmatch(provider):
            problems.append(
                f"PAYMENT_PROVIDER: expected test, none or package.module:factory, got {provider!r}"
            )
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

    def _production_problems(self) -> list[str]:
        problems = super()._production_problems()
        if self.resolved_payment_provider == "test":
            problems.append(
                "PAYMENT_PROVIDER: the test-mode provider takes no real payments and is refused "
                "in production; plug in a real provider (package.module:factory) or set none"
            )
        return problems
