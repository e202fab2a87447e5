"""k8s/components/loadgen: off by default; added to an install it renders valid, hardened
resources that reach the platform's public gRPC ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.deploy.support import K8S, SERVICES, Resource, build, named, of_kind
from tests.deploy.test_k8s_workloads import (
    test_every_pod_has_app_and_version_labels as assert_app_and_version_labels,
    test_every_pod_is_hardened as assert_hardened,
)
from tests.deploy.test_manifests_schema import errors_of

LOADGEN_NAMESPACE = "zoptal-loadgen"


@pytest.fixture(scope="module")
def with_loadgen(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> list[Resource]:
    """The plain-Kubernetes install (k8s/tests/no-istio) with the component added, as the
    component's own comment says to add it."""
    overlay = tmp_path_factory.mktemp("loadgen-install")
    base = os.path.relpath(K8S / "tests" / "no-istio", overlay)
    component = os.path.relpath(K8S / "components" / "loadgen", overlay)
    (overlay / "kustomization.yaml").write_text(f"resources: [{base}]\ncomponents: [{component}]\n")
    return build(kubectl, Path(overlay))


def test_the_default_install_has_no_load_generator(full_install: list[Resource]) -> None:
    names = {r["metadata"]["name"] for r in full_install}
    assert "loadgen" not in names
    assert LOADGEN_NAMESPACE not in names


def test_it_validates_and_is_hardened_like_every_workload(with_loadgen: list[Resource]) -> None:
    problems = [problem for resource in with_loadgen for problem in errors_of(resource)]
    assert not problems, "\n".join(problems)
    # The workload checks every install passes, applied to this one (the loadgen pod included).
    assert_hardened(with_loadgen)
    assert_app_and_version_labels(with_loadgen)
    account = named(with_loadgen, "ServiceAccount", "loadgen")
    assert account["automountServiceAccountToken"] is False


def test_it_runs_outside_the_platform_namespace_and_calls_the_public_ports(
    with_loadgen: list[Resource],
) -> None:
    ours = [r for r in with_loadgen if r["metadata"].get("namespace") == LOADGEN_NAMESPACE]
    assert {(r["kind"], r["metadata"]["name"].rsplit("-", 1)[0]) for r in ours} >= {
        ("Deployment", "loadgen"), ("NetworkPolicy", "loadgen"), ("ConfigMap", "loadgen-config"),
    }  # fmt: skip
    deployment = named(with_loadgen, "Deployment", "loadgen")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "zoptal_loadgen"]
    assert "--duration" in container["args"]
    (config_ref,) = container["envFrom"]
    (config,) = [
        c
        for c in of_kind(ours, "ConfigMap")
        if c["metadata"]["name"] == config_ref["configMapRef"]["name"]
    ]
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in of_kind(with_loadgen, "Service")
        if s["metadata"].get("namespace") == "zoptal"
    }
    allowed_ports: set[int] = set()
    for rule in named(with_loadgen, "NetworkPolicy", "loadgen")["spec"]["egress"]:
        allowed_ports |= {p["port"] for p in rule["ports"]}
    for svc, (grpc_port, _, _) in SERVICES.items():
        address = config["data"][f"{svc.upper()}_ADDR"]
        assert address == f"{svc}.zoptal.svc.cluster.local:{grpc_port}"
        assert grpc_port in services[svc], f"Service {svc} has no port {grpc_port}"
        assert grpc_port in allowed_ports
