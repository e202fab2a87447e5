# ruff: noqa: E501  (PromQL and alert texts are kept on one line each, as they are read)
"""The Prometheus rules: SLI recording rules, multi-window multi-burn-rate SLO alerts (the SRE
workbook's way) and the alerts on meshcore's machinery. ``rule_groups()`` returns the files'
content; ``generate.py`` writes them."""

from __future__ import annotations

from typing import Any

from catalogue import (
    AVAILABILITY_TARGET,
    BURN_RATE_ALERTS,
    DELIVERIES,
    DELIVERY_FAILURE_RATIO,
    LATENCY_TARGET,
    NOTIFICATION_WORKER,
    SERVER_ERROR_CODES,
    SERVICES,
    WINDOWS,
    rpc_selector,
)

__all__ = ["RUNBOOKS", "rule_files"]

RUNBOOKS = "docs/runbooks"
Rule = dict[str, Any]


def _alert(
    name: str, expr: str, duration: str, severity: str, summary: str, description: str
) -> Rule:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOKS}/{name}.md",
        },
    }


def _availability_records() -> list[Rule]:
    server_errors = rpc_selector()[:-1] + f', grpc_code=~"{"|".join(SERVER_ERROR_CODES)}"}}'
    rules = []
    for window in WINDOWS:
        total = f"sum by (service) (rate(grpc_server_handled_total{rpc_selector()}[{window}]))"
        failed = f"sum by (service) (rate(grpc_server_handled_total{server_errors}[{window}]))"
        rules.append(
            {
                "record": f"service:zoptal_availability_errors:ratio_rate{window}",
                # No server error in the window is a ratio of 0, not a missing series.
                "expr": f"({failed} or {total} * 0)\n/\n{total}",
            }
        )
    return rules


def _latency_records() -> list[Rule]:
    # One rule per threshold (services sharing one share the rule): two rules recording the same
    # name and labels would be ambiguous, and promtool refuses them.
    thresholds: dict[str, list[str]] = {}
    for service in SERVICES:
        thresholds.setdefault(service.latency_threshold, []).append(service.name)
    rules = []
    for threshold, names in thresholds.items():
        services = f'service=~"{"|".join(names)}", '
        unary = "{" + services + rpc_selector(grpc_type="unary")[1:]
        fast = unary[:-1] + f', le="{threshold}"}}'
        for window in WINDOWS:
            rules.append(
                {
                    "record": f"service:zoptal_latency_slow:ratio_rate{window}",
                    "labels": {"latency_threshold_seconds": threshold},
                    "expr": (
                        "1 - (\n"
                        f"  sum by (service) (rate(grpc_server_handling_seconds_bucket{fast}[{window}]))\n"
                        "  /\n"
                        f"  sum by (service) (rate(grpc_server_handling_seconds_count{unary}[{window}]))\n"
                        ")"
                    ),
                }
            )
    return rules


def _burn_rate_alerts(sli: str, what: str, target: float) -> list[Rule]:
    budget = round(1 - target, 6)
    alerts = []
    for alert in BURN_RATE_ALERTS:
        clauses = [
            f"(\n  service:{sli}:ratio_rate{long} > ({rate:g} * {budget:g})\n"
            f"  and\n  service:{sli}:ratio_rate{short} > ({rate:g} * {budget:g})\n)"
            for long, short, rate in alert.pairs
        ]
        windows = " or ".join(
            f"{rate:g}x over {long} and {short}" for long, short, rate in alert.pairs
        )
        name = f"Zoptal{what}BudgetBurn{alert.suffix}"
        alerts.append(
            _alert(
                name,
                "\nor\n".join(clauses),
                "2m" if alert.severity == "page" else "15m",
                alert.severity,
                f"{{{{ $labels.service }}}} is spending its {what.lower()} error budget fast"
                if alert.severity == "page"
                else f"{{{{ $labels.service }}}} is steadily spending its {what.lower()} error budget",
                f"The {what.lower()} SLO of {{{{ $labels.service }}}} ({target * 100:g} % over 30 days) "
                f"is burning its budget at {windows} (SRE workbook multi-window, multi-burn-rate).",
            )
        )
    return alerts


def _delivery_failure_alert() -> Rule:
    # At least 3 failures in the window: one bounced address among a handful of notifications
    # on a quiet night is a user's typo, not an outage.
    worker = f'service="{NOTIFICATION_WORKER}"'
    failed = f'sum by (channel) (rate({DELIVERIES}{{{worker}, outcome="failed"}}[30m]))'
    finished = f'sum by (channel) (rate({DELIVERIES}{{{worker}, outcome=~"sent|failed"}}[30m]))'
    failures = f'sum by (channel) (increase({DELIVERIES}{{{worker}, outcome="failed"}}[30m]))'
    return _alert(
        "ZoptalNotificationDeliveryFailing",
        f"(\n  {failed}\n  /\n  {finished}\n) > {DELIVERY_FAILURE_RATIO:g}\nand\n{failures} >= 3",
        "15m",
        "warning",
        "{{ $value | humanizePercentage }} of {{ $labels.channel }} notifications fail for good",
        f"More than {DELIVERY_FAILURE_RATIO * 100:g} % of the {{{{ $labels.channel }}}} "
        "notifications that finished in the last 30 minutes failed for good (a permanent "
        "provider error, or every attempt failed): the provider refuses them, or is down for "
        "longer than the retries last.",
    )


def _machinery_alerts() -> list[Rule]:
    return [
        _alert(
            "ZoptalCircuitBreakerOpen",
            'max by (service, peer_service, endpoint) (meshcore_circuit_breaker_state{state="open"}) == 1',
            "5m",
            "warning",
            "{{ $labels.service }} keeps its circuit to {{ $labels.peer_service }} open",
            "The breaker of {{ $labels.service }} for {{ $labels.peer_service }} at "
            "{{ $labels.endpoint }} has been open for 5 minutes: calls to that replica fail at once "
            "with UNAVAILABLE.",
        ),
        _alert(
            "ZoptalCeleryBacklogHigh",
            'max by (service, backlog) (meshcore_backlog_items{backlog="notification_deliveries"}) > 500',
            "10m",
            "warning",
            "{{ $value }} notifications wait for delivery",
            "More than 500 notifications have been queued or sending for 10 minutes: the Celery "
            "workers do not keep up, or cannot reach the broker or the providers.",
        ),
        _alert(
            "ZoptalCeleryBacklogStale",
            'max by (service, backlog) (meshcore_backlog_oldest_age_seconds{backlog="notification_deliveries"}) > 900',
            "5m",
            "page",
            "The oldest undelivered notification is {{ $value | humanizeDuration }} old",
            "A notification has waited more than 15 minutes for delivery: no worker is taking "
            "tasks, or every attempt fails and is retried.",
        ),
        _delivery_failure_alert(),
        _alert(
            "ZoptalOutboxLagging",
            'max by (service, backlog) (meshcore_backlog_oldest_age_seconds{backlog=~"project_usage_outbox|billing_threshold_notices"}) > 600',
            "5m",
            "warning",
            "{{ $labels.backlog }} of {{ $labels.service }} is {{ $value | humanizeDuration }} behind",
            "The oldest row of the {{ $labels.backlog }} outbox has waited more than 10 minutes: "
            "its relay cannot deliver to the peer it calls.",
        ),
        _alert(
            "ZoptalCertificateExpiringSoon",
            "min by (service, instance, file) (meshcore_tls_certificate_not_after_timestamp_seconds) - time() < 7 * 86400",
            "15m",
            "ticket",
            "The {{ $labels.file }} certificate of {{ $labels.service }} expires within 7 days",
            "{{ $labels.instance }} serves a {{ $labels.file }} certificate that expires in "
            "{{ $value | humanizeDuration }}; renewal (pki-init, cert-manager) has not replaced it.",
        ),
        _alert(
            "ZoptalCertificateExpiryImminent",
            "min by (service, instance, file) (meshcore_tls_certificate_not_after_timestamp_seconds) - time() < 86400",
            "5m",
            "page",
            "The {{ $labels.file }} certificate of {{ $labels.service }} expires within a day",
            "{{ $labels.instance }} serves a {{ $labels.file }} certificate that expires in "
            "{{ $value | humanizeDuration }}: mTLS calls to and from it will fail when it does.",
        ),
        _alert(
            "ZoptalScrapeTargetDown",
            'up{job="zoptal"} == 0',
            "2m",
            "page",
            "Prometheus cannot scrape {{ $labels.service }} at {{ $labels.instance }}",
            "{{ $labels.instance }} has not answered on /metrics for 2 minutes: the process is "
            "down, or its METRICS_PORT (the Celery worker's WORKER_METRICS_PORT) is unreachable. "
            "Its alerts cannot fire meanwhile.",
        ),
    ]


def rule_files() -> dict[str, dict[str, Any]]:
    """File name -> rule file content (``groups``)."""
    return {
        "zoptal-slo.rules.yml": {
            "groups": [
                {
                    "name": "zoptal-sli-availability",
                    "interval": "30s",
                    "rules": _availability_records(),
                },
                {"name": "zoptal-sli-latency", "interval": "30s", "rules": _latency_records()},
                {
                    "name": "zoptal-slo-alerts",
                    "rules": _burn_rate_alerts(
                        "zoptal_availability_errors", "Availability", AVAILABILITY_TARGET
                    )
                    + _burn_rate_alerts("zoptal_latency_slow", "Latency", LATENCY_TARGET),
                },
            ]
        },
        "zoptal-platform.rules.yml": {
            "groups": [{"name": "zoptal-platform-alerts", "rules": _machinery_alerts()}]
        },
    }
