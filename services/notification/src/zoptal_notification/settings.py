"""Notification settings: the common service settings plus SMTP, webhooks, Celery and delivery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from meshcore.message_size import KiB
from meshcore.settings import Secret, ServiceSettings, SettingsError, url_field

__all__ = ["NotificationSettings"]


@dataclass(frozen=True, kw_only=True)
class NotificationSettings(ServiceSettings):
    service_name: ClassVar[str] = "notification"
    largest_request_bytes: ClassVar[int] = 2816 * KiB
    """The largest request the API allows, encoded (SendEmail: 500000 + 100000 characters of body,
    50 template values); tests/message_bounds.py computes it."""
    peer_defaults: ClassVar[Mapping[str, str]] = {"auth": "127.0.0.1:4000"}
    """Auth only: polled for revoked tokens (ListRevocations)."""

    grpc_port: int = 4004
    metrics_port: int = 9404
    worker_metrics_port: int = 0
    """The Celery worker's Prometheus ``/metrics`` port (delivery outcomes and latency); ``0``
    turns it off (``zoptal_notification.worker_metrics``). The gRPC server ignores it."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    """Mailpit's SMTP port in compose; the embedded mode points this at any local sink."""
    smtp_from: str = "Zoptal <no-reply@zoptal.local>"
    smtp_username: str | None = None
    smtp_password: Secret | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0

    sms_webhook_url: str | None = None
    """Where SMS are POSTed as JSON; unset means the log provider (development)."""
    push_webhook_url: str | None = None
    """Where push notifications are POSTed as JSON; unset means the log provider."""
    webhook_secret: Secret | None = None
    """When set, webhook bodies carry an HMAC-SHA256 signature in ``X-Zoptal-Signature``."""
    webhook_timeout_seconds: float = 5.0

    celery_broker_url: str = url_field("")
    """Empty means ``REDIS_URL`` when set, else kombu's SQLAlchemy transport on
    ``sqla+sqlite:///<DATA_DIR>/celery-broker.db`` (the embedded mode)."""
    celery_queue: str = "notifications"
    worker_threads: int = 4
    """Deliveries the worker runs at once: Celery's thread pool, all on one event loop, one
    database pool and one set of provider clients (a delivery mostly waits on the network)."""
    celery_visibility_timeout_seconds: int = 3600
    """Redis broker: an unacknowledged message is redelivered after this long. It must exceed
    the longest retry countdown, or Redis hands the same retry out twice (harmless, the row
    claim stops the second one, but wasteful)."""

    delivery_max_attempts: int = 5
    retry_backoff_seconds: float = 2.0
    retry_backoff_max_seconds: float = 300.0
    delivery_lease_seconds: float = 120.0
    """How long a worker owns a notification while delivering it. Longer than any provider
    timeout, so a live worker never loses its claim; after it, a dead worker's claim is taken
    over by the next delivery task."""

    outbox_relay_interval_seconds: float = 5.0
    outbox_dispatch_grace_seconds: float = 10.0
    """A queued row not handed to the broker this long after its commit is dispatched by the
    outbox relay (the process died, or the broker was down, between commit and enqueue)."""
    outbox_redispatch_after_seconds: float = 300.0
    """A dispatched row that no worker has claimed this long after it was due is dispatched
    again (a broker that lost the message, for example the SQLite transport after a crash)."""

    def __post_init__(self) -> None:
        if not self.celery_broker_url:
            broker = self.redis_url or f"sqla+sqlite:///{self.data_dir / 'celery-broker.db'}"
            object.__setattr__(self, "celery_broker_url", broker)
        super().__post_init__()

    def _validate(self) -> None:
        problems: list[str] = []
        if not 1 <= self.worker_threads <= 64:
            problems.append("WORKER_THREADS: must be between 1 and 64")
        if self.delivery_max_attempts < 1:
            problems.append("DELIVERY_MAX_ATTEMPTS: must be at least 1")
        timeouts = max(self.smtp_timeout_seconds, self.webhook_timeout_seconds)
        if self.delivery_lease_seconds <= timeouts:
            problems.append(
                "DELIVERY_LEASE_SECONDS: must exceed SMTP_TIMEOUT_SECONDS and "
                "WEBHOOK_TIMEOUT_SECONDS, or a slow but live delivery could be taken over"
            )
        for name in (
            "retry_backoff_seconds",
            "outbox_relay_interval_seconds",
            "outbox_redispatch_after_seconds",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name.upper()}: must be positive")
        if problems:
            raise SettingsError("invalid notification settings: " + "; ".join(problems))
        super()._validate()

    def _production_problems(self) -> list[str]:
        problems = super()._production_problems()
        if self.celery_broker_url.startswith("sqla+sqlite"):
            problems.append(
                "CELERY_BROKER_URL: the SQLite broker is for the embedded mode; use Redis"
            )
        return problems
