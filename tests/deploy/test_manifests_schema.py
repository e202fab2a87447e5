"""Every kustomization builds, and every resource it renders validates against its schema.

Kubernetes kinds use the strict (unknown fields rejected) v1.32 schemas vendored in
schemas/kubernetes/; Istio kinds use the closed schemas of istio_schemas.py.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource as SchemaResource

from tests.deploy.istio_schemas import ISTIO_SCHEMAS
from tests.deploy.support import K8S, REPO, Resource, build, kustomizations

K8S_SCHEMAS = Path(__file__).parent / "schemas" / "kubernetes" / "v1.32"


def _schema_file(api_version: str, kind: str) -> Path:
    group, _, version = api_version.rpartition("/")
    group = group.split(".")[0]
    suffix = f"{group}-{version}" if group else version
    return K8S_SCHEMAS / f"{kind.lower()}-{suffix}.json"


@cache
def _k8s_registry() -> Registry:
    definitions = json.loads((K8S_SCHEMAS / "_definitions.json").read_text())
    return SchemaResource.from_contents(definitions) @ Registry()


@cache
def validator_for(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    if (api_version, kind) in ISTIO_SCHEMAS:
        return jsonschema.Draft202012Validator(ISTIO_SCHEMAS[(api_version, kind)])
    path = _schema_file(api_version, kind)
    if not path.exists():
        pytest.fail(f"no schema for {api_version} {kind}: vendor it (schemas/vendor_schemas.py)")
    return jsonschema.Draft202012Validator(json.loads(path.read_text()), registry=_k8s_registry())


def errors_of(resource: Resource) -> list[str]:
    validator = validator_for(resource["apiVersion"], resource["kind"])
    where = f"{resource['kind']}/{resource['metadata'].get('name')}"
    return [
        f"{where}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(resource)
    ]


KUSTOMIZATIONS = kustomizations()


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: str(d.relative_to(REPO)))
def test_kustomization_builds_and_validates(kubectl: str, directory: Path) -> None:
    """`kubectl kustomize DIR` succeeds and each resource passes its strict schema."""
    resources = build(kubectl, directory)
    assert resources, "the build rendered nothing"
    problems = [problem for resource in resources for problem in errors_of(resource)]
    assert not problems, "\n".join(problems)


def test_every_scenario_and_the_root_are_built() -> None:
    """The checks cover k8s/, k8s/base and at least the documented k8s/tests scenarios."""
    names = {d.name for d in KUSTOMIZATIONS}
    assert {"k8s", "base", "no-istio", "external-postgres", "canary", "fault-injection"} <= names


def test_root_includes_base_and_the_istio_component(full_install: list[Resource]) -> None:
    """`kubectl apply -k k8s/` brings the platform and its Istio policies together."""
    kinds = {r["kind"] for r in full_install}
    assert {
        "Deployment",
        "StatefulSet",
        "NetworkPolicy",
        "AuthorizationPolicy",
        "Telemetry",
    } <= kinds
    component = (K8S / "components" / "istio" / "kustomization.yaml").read_text()
    assert "kind: Component" in component


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        # The seed's DestinationRule field, which Istio does not have.
        (("spec", "trafficPolicy", "circuitBreaker"), "circuitBreaker"),
        (
            ("spec", "trafficPolicy", "outlierDetection", "consecutive5xxError"),
            "consecutive5xxError",
        ),
    ],
)
def test_istio_schema_rejects_unknown_fields(
    full_install: list[Resource], patch: tuple[str, ...], expected: str
) -> None:
    """A field Istio does not define fails validation instead of being silently pruned."""
    rule = next(r for r in full_install if r["kind"] == "DestinationRule")
    broken = json.loads(json.dumps(rule))
    node = broken
    for key in patch[:-1]:
        node = node[key]
    node[patch[-1]] = {"consecutiveGatewayErrors": 5} if patch[-1] == "circuitBreaker" else 5
    assert any(expected in problem for problem in errors_of(broken))


def test_kubernetes_schema_rejects_unknown_fields(full_install: list[Resource]) -> None:
    """The Kubernetes schemas are strict too: a misspelt container field is an error."""
    deployment = next(r for r in full_install if r["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grcp"] = {"port": 1}
    assert any("grcp" in problem for problem in errors_of(broken))


def istio_resources(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if r["apiVersion"].split("/")[0].endswith(".istio.io")]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: str(d.relative_to(REPO)))
def test_istio_resources_validate_against_istio_crds(
    kubectl: str, crd_validator: list[str], directory: Path
) -> None:
    """Types, enums and required fields as Istio's own CRDs (1.29) define them."""
    resources = istio_resources(build(kubectl, directory))
    problems = run_crd_validator(crd_validator, resources)
    assert not problems, "\n".join(problems)


def run_crd_validator(command: list[str], resources: list[Resource]) -> list[str]:
    done = subprocess.run(
        command,
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    problems: list[str] = json.loads(done.stdout)
    return problems


def test_istio_crd_check_can_fail(crd_validator: list[str]) -> None:
    """A retry count given as a string and a 14 for grpcStatus are rejected by Istio's CRDs."""
    bad = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "bad"},
        "spec": {
            "http": [{"retries": {"attempts": "two"}, "fault": {"abort": {"grpcStatus": 14}}}]
        },
    }
    problems = run_crd_validator(crd_validator, [bad])
    assert any("retries/attempts" in p for p in problems)
    assert any("grpcStatus" in p for p in problems)
