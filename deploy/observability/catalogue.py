"""What the dashboards and alert rules know about the platform: its services, their peers, the
SLO targets, and the PromQL selectors every expression shares.

The SLO targets are the documented ones (docs/observability.md): change them here and run
``python deploy/observability/generate.py`` to rewrite the rules and dashboards.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AVAILABILITY_TARGET",
    "BURN_RATE_ALERTS",
    "DELIVERIES",
    "DELIVERY_FAILURE_RATIO",
    "LATENCY_TARGET",
    "NOTIFICATION_WORKER",
    "SERVER_ERROR_CODES",
    "SERVICES",
    "WINDOWS",
    "BurnRateAlert",
    "Service",
    "rpc_selector",
]


@dataclass(frozen=True)
class Service:
    name: str
    grpc_service: str
    peers: tuple[str, ...]
    """The services it calls through meshcore (breakers, retries, client metrics)."""
    latency_threshold: str
    """A bucket bound of ``grpc_server_handling_seconds`` (exactly as exported, in seconds):
    a unary call answered within it is fast enough."""
    backlogs: tuple[str, ...] = ()
    """``meshcore_backlog_*{backlog=...}`` the service exports."""


SERVICES: tuple[Service, ...] = (
    # Login, RegisterUser and IssueServiceToken hash passwords (Argon2id): slower by design.
    Service("auth", "zoptal.auth.v1.AuthService", (), "2.5"),
    Service(
        "project",
        "zoptal.project.v1.ProjectService",
        ("auth", "billing", "analytics"),
        "1.0",
        ("project_usage_outbox",),
    ),
    Service(
        "billing",
        "zoptal.billing.v1.BillingService",
        ("auth", "notification"),
        "0.5",
        ("billing_threshold_notices",),
    ),
    Service(
        "notification",
        "zoptal.notification.v1.NotificationService",
        ("auth",),
        "0.5",
        ("notification_deliveries",),
    ),
    Service("analytics", "zoptal.analytics.v1.AnalyticsService", ("auth",), "0.5"),
)

AVAILABILITY_TARGET = 0.999
"""Of the calls to a service's own RPCs over 30 days, this fraction ends without a server error."""
LATENCY_TARGET = 0.99
"""Of the unary calls to a service's own RPCs over 30 days, this fraction ends within the
service's ``latency_threshold``."""

SERVER_ERROR_CODES = (
    "UNKNOWN",
    "INTERNAL",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "DATA_LOSS",
    "UNIMPLEMENTED",
)
"""Codes that spend the availability budget. A client's own mistakes (INVALID_ARGUMENT,
NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED, ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED,
RESOURCE_EXHAUSTED, OUT_OF_RANGE, CANCELLED) are answers the service gave as designed."""

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
"""The rate windows the multi-window burn-rate alerts read (the SRE workbook, chapter 5)."""


@dataclass(frozen=True)
class BurnRateAlert:
    """Page or ticket when both windows of either pair burn the budget ``burn_rate`` times
    faster than a budget that would last exactly the 30 days."""

    suffix: str
    severity: str
    pairs: tuple[tuple[str, str, float], ...]
    """(long window, short window, burn rate)."""


# The workbook's table: 2 % of a 30-day budget spent in 1 h, or 5 % in 6 h, pages; 10 % in 1 d
# or in 3 d opens a ticket. The short window makes the alert stop soon after the burn does.
BURN_RATE_ALERTS: tuple[BurnRateAlert, ...] = (
    BurnRateAlert("Fast", "page", (("1h", "5m", 14.4), ("6h", "30m", 6.0))),
    BurnRateAlert("Slow", "ticket", (("1d", "2h", 3.0), ("3d", "6h", 1.0))),
)


NOTIFICATION_WORKER = "notification-worker"
"""The ``service`` label of the Celery worker's own scrape target (WORKER_METRICS_PORT)."""
DELIVERIES = "zoptal_notification_deliveries_total"
"""Delivery tasks by ``outcome`` (sent, retried, failed, skipped, deferred) and ``channel``."""
DELIVERY_FAILURE_RATIO = 0.05
"""Alert when more than this share of the notifications that finished (sent or failed for
good) in the last 30 minutes failed for good."""


def rpc_selector(service: str | None = None, **extra: str) -> str:
    """The label matchers of a service's own RPCs (not health checks or reflection)."""
    matchers = ['grpc_service=~"zoptal\\\\..*"']
    if service is not None:
        matchers.insert(0, f'service="{service}"')
    matchers += [f'{name}="{value}"' for name, value in extra.items()]
    return "{" + ", ".join(matchers) + "}"
