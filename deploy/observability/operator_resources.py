"""The Prometheus Operator's custom resources for the same rules and targets: a PrometheusRule
per rule file (its ``spec.groups`` are the file's groups, unchanged) and one PodMonitor that
scrapes every service and the Celery worker the way docs/observability.md asks of any Prometheus
(job "zoptal", the pod's ``app`` label as ``service``). ``generate.py`` writes them into
k8s/components/prometheus-operator/."""

from __future__ import annotations

from typing import Any

from catalogue import NOTIFICATION_WORKER, SERVICES

__all__ = ["NAMESPACE", "RULES_SUFFIX", "pod_monitor", "prometheus_rules"]

API_VERSION = "monitoring.coreos.com/v1"
NAMESPACE = "zoptal"
RULES_SUFFIX = ".rules.yml"
LABELS = {"app.kubernetes.io/part-of": "zoptal"}
METRICS_PORT_NAME = "http-metrics"
"""The name every Zoptal pod gives its metrics container port (k8s/base)."""


def prometheus_rules(rule_files: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One PrometheusRule per rule file, named after it (``zoptal-slo.rules.yml`` ->
    ``zoptal-slo``)."""
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "PrometheusRule",
            "metadata": {
                "name": name.removesuffix(RULES_SUFFIX),
                "namespace": NAMESPACE,
                "labels": dict(LABELS),
            },
            "spec": {"groups": content["groups"]},
        }
        for name, content in rule_files.items()
    ]


def pod_monitor() -> dict[str, Any]:
    apps = [service.name for service in SERVICES] + [NOTIFICATION_WORKER]
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": {"name": "zoptal", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": apps}]},
            "podMetricsEndpoints": [
                {
                    "port": METRICS_PORT_NAME,
                    "path": "/metrics",
                    "interval": "15s",
                    # The labels the dashboards and rules select on, as compose's Prometheus
                    # sets them: the operator's own job label would be "zoptal/zoptal".
                    "relabelings": [
                        {
                            "sourceLabels": ["__meta_kubernetes_pod_label_app"],
                            "targetLabel": "service",
                        },
                        {"targetLabel": "job", "replacement": "zoptal"},
                    ],
                }
            ],
        },
    }
