# ruff: noqa: E501  (PromQL and alert texts are kept on one line each, as they are read)
"""The Grafana dashboards: the platform overview (the four golden signals per service) and one
dashboard per service. Every expression reads a metric the services export (the test
tests/observability/test_dashboards_live.py runs each one against a running platform)."""

from __future__ import annotations

from typing import Any

from catalogue import (
    DELIVERIES,
    NOTIFICATION_WORKER,
    SERVER_ERROR_CODES,
    SERVICES,
    Service,
    rpc_selector,
)

__all__ = ["dashboards"]

Panel = dict[str, Any]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
WIDTH, HEIGHT = 12, 8


def _panel(
    title: str, targets: list[tuple[str, str]], unit: str = "short", description: str = ""
) -> Panel:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _server_errors(selector_without_code: str) -> str:
    return selector_without_code[:-1] + f', grpc_code=~"{"|".join(SERVER_ERROR_CODES)}"}}'


def _dashboard(uid: str, title: str, panels: list[Panel], tags: list[str]) -> dict[str, Any]:
    for index, panel in enumerate(panels):
        panel["id"] = index + 1
        panel["gridPos"] = {
            "x": (index % 2) * WIDTH,
            "y": (index // 2) * HEIGHT,
            "w": WIDTH,
            "h": HEIGHT,
        }
    return {
        "uid": uid,
        "title": title,
        "tags": ["zoptal", *tags],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def overview() -> dict[str, Any]:
    rpcs = rpc_selector()
    total = f"sum by (service) (rate(grpc_server_handled_total{rpcs}[{RATE}]))"
    failed = f"sum by (service) (rate(grpc_server_handled_total{_server_errors(rpcs)}[{RATE}]))"
    buckets = f"rate(grpc_server_handling_seconds_bucket{rpc_selector(grpc_type='unary')}[{RATE}])"
    panels = [
        _panel("Traffic: calls per second", [(total, "{{service}}")], "reqps"),
        _panel(
            "Errors: server-error ratio",
            [(f"({failed} or {total} * 0) / {total}", "{{service}}")],
            "percentunit",
            "Calls ending UNKNOWN, INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED, DATA_LOSS or "
            "UNIMPLEMENTED, as a share of all calls (what the availability SLO counts).",
        ),
        _panel(
            "Latency: p99 of unary calls",
            [(f"histogram_quantile(0.99, sum by (service, le) ({buckets}))", "{{service}}")],
            "s",
        ),
        _panel(
            "Saturation: database connections in use",
            [
                (
                    'sum by (service) (meshcore_db_pool_connections{state="in_use"})'
                    " / sum by (service) (meshcore_db_pool_max_connections)",
                    "{{service}}",
                )
            ],
            "percentunit",
        ),
        _panel(
            "Saturation: CPU per service",
            [
                (
                    'sum by (service) (rate(process_cpu_seconds_total{job="zoptal"}['
                    + RATE
                    + "]))",
                    "{{service}}",
                )
            ],
            "percentunit",
        ),
        _panel(
            "Client errors by code",
            [
                (
                    f'sum by (service, grpc_code) (rate(grpc_server_handled_total{rpc_selector()[:-1]}, grpc_code!="OK"}}[{RATE}]))',
                    "{{service}} {{grpc_code}}",
                )
            ],
            "reqps",
        ),
    ]
    return _dashboard("zoptal-overview", "Zoptal: platform overview", panels, ["overview"])


def service_dashboard(service: Service) -> dict[str, Any]:
    name = service.name
    rpcs = rpc_selector(name)
    unary = rpc_selector(name, grpc_type="unary")
    own = f'{{service="{name}"}}'
    panels = [
        _panel(
            "Calls per second by RPC",
            [
                (
                    f"sum by (grpc_method) (rate(grpc_server_handled_total{rpcs}[{RATE}]))",
                    "{{grpc_method}}",
                )
            ],
            "reqps",
        ),
        _panel(
            "Errors by code",
            [
                (
                    f'sum by (grpc_code) (rate(grpc_server_handled_total{rpcs[:-1]}, grpc_code!="OK"}}[{RATE}]))',
                    "{{grpc_code}}",
                )
            ],
            "reqps",
        ),
        *[
            _panel(
                f"Latency p{int(q * 100)} by RPC (unary)",
                [
                    (
                        f"histogram_quantile({q}, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket{unary}[{RATE}])))",
                        "{{grpc_method}}",
                    )
                ],
                "s",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        _panel(
            "Database pool",
            [
                (f"sum by (state) (meshcore_db_pool_connections{own})", "{{state}}"),
                (f"sum (meshcore_db_pool_max_connections{own})", "max"),
            ],
        ),
        _panel(
            "Rate-limit rejections",
            [(f"sum (rate(meshcore_rate_limit_rejections_total{own}[{RATE}]))", "rejected")],
            "reqps",
        ),
    ]
    if service.peers:
        peers = f'{{service="{name}", grpc_service=~"zoptal\\\\..*"}}'
        panels += [
            _panel(
                "Calls to peers by code",
                [
                    (
                        f"sum by (grpc_service, grpc_code) (rate(grpc_client_handled_total{peers}[{RATE}]))",
                        "{{grpc_service}} {{grpc_code}}",
                    )
                ],
                "reqps",
            ),
            _panel(
                "Circuit breakers open",
                [
                    (
                        f'max by (peer_service, endpoint) (meshcore_circuit_breaker_state{{service="{name}", state="open"}})',
                        "{{peer_service}} {{endpoint}}",
                    )
                ],
                description="1 while the breaker for that replica is open (calls fail at once).",
            ),
            _panel(
                "Retries to peers",
                [
                    (
                        f"sum by (peer_service) (rate(meshcore_client_retries_total{own}[{RATE}]))",
                        "{{peer_service}}",
                    )
                ],
                "reqps",
            ),
        ]
    for backlog in service.backlogs:
        selector = f'{{service="{name}", backlog="{backlog}"}}'
        panels += [
            _panel(f"Backlog: {backlog}", [(f"max (meshcore_backlog_items{selector})", "waiting")]),
            _panel(
                f"Backlog age: {backlog}",
                [(f"max (meshcore_backlog_oldest_age_seconds{selector})", "oldest")],
                "s",
            ),
        ]
    if name == "notification":
        panels += _delivery_panels()
    if name == "analytics":
        panels += [
            _panel(
                "Ingest: events per committed batch",
                [
                    (
                        f"sum (rate(zoptal_analytics_ingest_committed_events_total{own}[{RATE}]))"
                        f" / sum (rate(zoptal_analytics_ingest_batches_total{own}[{RATE}]))",
                        "events per batch",
                    )
                ],
            ),
            _panel(
                "Ingest: events and batches",
                [
                    (
                        f"sum (rate(zoptal_analytics_ingest_committed_events_total{own}[{RATE}]))",
                        "committed events",
                    ),
                    (
                        f"sum (rate(zoptal_analytics_ingest_rejected_events_total{own}[{RATE}]))",
                        "rejected events",
                    ),
                    (
                        f"sum (rate(zoptal_analytics_ingest_failed_batches_total{own}[{RATE}]))",
                        "failed batches",
                    ),
                    (f"sum (zoptal_analytics_ingest_pending_events{own})", "pending events"),
                ],
            ),
        ]
    return _dashboard(f"zoptal-{name}", f"Zoptal: {name}", panels, [name])


def _delivery_panels() -> list[Panel]:
    """The Celery worker's delivery outcomes and latency (its own target, WORKER_METRICS_PORT)."""
    worker = f'service="{NOTIFICATION_WORKER}"'

    def deliveries(outcomes: str) -> str:
        return f'sum (rate({DELIVERIES}{{{worker}, outcome=~"{outcomes}"}}[{RATE}]))'

    latency = f"rate(zoptal_notification_delivery_latency_seconds_bucket{{{worker}}}[{RATE}])"
    attempt = f"rate(zoptal_notification_delivery_attempt_seconds_bucket{{{worker}}}[{RATE}])"
    return [
        _panel(
            "Deliveries by outcome",
            [
                (
                    f"sum by (outcome, channel) (rate({DELIVERIES}{{{worker}}}[{RATE}]))",
                    "{{outcome}} {{channel}}",
                )
            ],
            "ops",
            "sent; retried (the attempt failed, another is scheduled); failed (for good); "
            "skipped (nothing to do); deferred (waited for another attempt or the database).",
        ),
        _panel(
            "Delivery failure ratio",
            [
                (
                    f"({deliveries('failed')} or vector(0)) / {deliveries('sent|failed')}",
                    "failed for good",
                ),
                (
                    f"({deliveries('retried|failed')} or vector(0)) / {deliveries('sent|retried|failed')}",
                    "failed attempts",
                ),
            ],
            "percentunit",
            "Of the notifications that finished, the share that failed for good (what "
            "ZoptalNotificationDeliveryFailing watches); of all attempts, the share that failed.",
        ),
        _panel(
            "Delivery latency: creation to sent",
            [
                (
                    f"histogram_quantile({q}, sum by (le) ({latency}))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.9, 0.99)
            ],
            "s",
            "From the send RPC until the provider accepted the message, retries included.",
        ),
        _panel(
            "Delivery attempt duration p99 by outcome",
            [
                (
                    f"histogram_quantile(0.99, sum by (outcome, le) ({attempt}))",
                    "{{outcome}}",
                )
            ],
            "s",
        ),
    ]


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON model."""
    found = {"zoptal-overview.json": overview()}
    for service in SERVICES:
        found[f"zoptal-{service.name}.json"] = service_dashboard(service)
    return found
