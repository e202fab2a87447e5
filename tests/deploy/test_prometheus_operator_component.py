"""k8s/components/prometheus-operator: off by default; added to an install it renders the
platform's rules as PrometheusRules (exactly the groups of the plain rule files) and a PodMonitor
for every metrics port, valid against the Prometheus Operator's own CRD schemas."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import K8S, NAMESPACE, Resource, build, of_kind
from tests.deploy.test_manifests_schema import errors_of, run_crd_validator

COMPONENT = K8S / "components" / "prometheus-operator"
RULES = K8S / "components" / "observability" / "rules"
OPERATOR_GROUP = "monitoring.coreos.com"


def operator_resources(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if r["apiVersion"].split("/")[0] == OPERATOR_GROUP]


@pytest.fixture(scope="module")
def with_operator(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> list[Resource]:
    """The plain-Kubernetes install (k8s/tests/no-istio) with the component added, as the
    component's own comment says to add it."""
    overlay = tmp_path_factory.mktemp("prometheus-operator-install")
    base = os.path.relpath(K8S / "tests" / "no-istio", overlay)
    component = os.path.relpath(COMPONENT, overlay)
    (overlay / "kustomization.yaml").write_text(f"resources: [{base}]\ncomponents: [{component}]\n")
    return build(kubectl, Path(overlay))


def test_the_default_install_has_no_operator_resources(full_install: list[Resource]) -> None:
    """Without the operator's CRDs the API server would refuse them: opt-in only."""
    assert operator_resources(full_install) == []


def test_the_rules_are_the_plain_rule_files_unchanged(with_operator: list[Resource]) -> None:
    """One PrometheusRule per file of components/observability/rules, with its groups."""
    rules = {r["metadata"]["name"]: r for r in of_kind(with_operator, "PrometheusRule")}
    files = {p.name.removesuffix(".rules.yml"): p for p in sorted(RULES.glob("*.rules.yml"))}
    assert set(rules) == set(files)
    for name, path in files.items():
        resource = rules[name]
        assert resource["apiVersion"] == f"{OPERATOR_GROUP}/v1"
        assert resource["metadata"]["namespace"] == NAMESPACE
        groups: list[dict[str, Any]] = resource["spec"]["groups"]
        assert groups == yaml.safe_load(path.read_text())["groups"], name
        assert all(group["name"] and group["rules"] for group in groups)
    alerts = {
        rule["alert"]
        for resource in rules.values()
        for group in resource["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert "ZoptalNotificationDeliveryFailing" in alerts


def test_the_pod_monitor_scrapes_every_metrics_port_as_job_zoptal(
    with_operator: list[Resource],
) -> None:
    """Every workload with an `http-metrics` port (the five services and the Celery worker) is
    selected, and relabelled the way the dashboards and rules expect."""
    (monitor,) = of_kind(with_operator, "PodMonitor")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    exposing = {
        d["spec"]["template"]["metadata"]["labels"]["app"]
        for d in of_kind(with_operator, "Deployment")
        if any(
            port.get("name") == "http-metrics"
            for container in d["spec"]["template"]["spec"]["containers"]
            for port in container.get("ports", [])
        )
    }
    assert "notification-worker" in exposing
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    assert (expression["key"], expression["operator"]) == ("app", "In")
    assert set(expression["values"]) == exposing
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http-metrics", "/metrics")
    relabel = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert relabel["service"]["sourceLabels"] == ["__meta_kubernetes_pod_label_app"]
    assert relabel["job"]["replacement"] == "zoptal"


def test_everything_validates_against_its_schema(
    with_operator: list[Resource], crd_validator: list[str]
) -> None:
    """The operator's kinds against its own CRDs; everything else as every install is."""
    ours = operator_resources(with_operator)
    assert {r["kind"] for r in ours} == {"PrometheusRule", "PodMonitor"}
    assert run_crd_validator(crd_validator, ours) == []
    others = [r for r in with_operator if r not in ours]
    problems = [problem for resource in others for problem in errors_of(resource)]
    assert not problems, "\n".join(problems)


def test_the_crd_check_refuses_a_malformed_rule(
    with_operator: list[Resource], crd_validator: list[str]
) -> None:
    """The check can fail: a group without a name, and a `for` that is no duration."""
    rule = next(
        r
        for r in of_kind(with_operator, "PrometheusRule")
        if r["metadata"]["name"] == "zoptal-platform"
    )
    broken = copy.deepcopy(rule)
    group = broken["spec"]["groups"][0]
    del group["name"]
    group["rules"][0]["for"] = "two minutes"
    problems = run_crd_validator(crd_validator, [broken])
    assert any("/spec/groups/0 " in p and "name" in p for p in problems), problems
    assert any("/spec/groups/0/rules/0/for" in p for p in problems), problems
