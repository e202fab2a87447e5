"""The Kubernetes workloads keep the properties issue 7 asks for, in every build that ships them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.deploy.support import (
    K8S,
    NAMESPACE,
    REPO,
    SERVICE_SETTINGS,
    SERVICES,
    Resource,
    build,
    calls_in_code,
    is_convention_env,
    kustomizations,
    named,
    of_kind,
)

THIRD_PARTY_APPS = {"postgres", "redis", "mailpit"}
POD_KINDS = ("Deployment", "StatefulSet", "Job")


def pod_specs(resources: list[Resource]) -> list[tuple[str, Resource, Resource]]:
    """(kind/name, pod template metadata, pod spec) of every workload."""
    return [
        (
            f"{r['kind']}/{r['metadata']['name']}",
            r["spec"]["template"]["metadata"],
            r["spec"]["template"]["spec"],
        )
        for kind in POD_KINDS
        for r in of_kind(resources, kind)
    ]


def container_of(resources: list[Resource], kind: str, name: str) -> Resource:
    containers = named(resources, kind, name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_every_pod_is_hardened(full_install: list[Resource]) -> None:
    """Non-root, RuntimeDefault seccomp, read-only root, no escalation, no capabilities, bounds."""
    problems = []
    for where, _, spec in pod_specs(full_install):
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot")
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile")
        for container in spec.get("initContainers", []) + spec["containers"]:
            sc = container.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}/{container['name']}: readOnlyRootFilesystem")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}/{container['name']}: allowPrivilegeEscalation")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}/{container['name']}: capabilities.drop ALL")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                if set(resources.get(bound, {})) != {"cpu", "memory"}:
                    problems.append(f"{where}/{container['name']}: {bound} cpu+memory")
    assert not problems, "\n".join(problems)


def test_every_pod_has_app_and_version_labels(full_install: list[Resource]) -> None:
    """Istio's telemetry and the bookinfo-style routing need `app` and `version` on each pod."""
    missing = [
        where
        for where, meta, _ in pod_specs(full_install)
        if not {"app", "version"} <= set(meta["labels"])
    ]
    assert not missing


@pytest.mark.parametrize("svc", SERVICES)
def test_service_deployment_runs_as_uid_1000_with_tmp(
    full_install: list[Resource], svc: str
) -> None:
    """The image's user, an emptyDir on /tmp (the only writable path) and its own ServiceAccount."""
    spec = named(full_install, "Deployment", svc)["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["serviceAccountName"] == svc
    named(full_install, "ServiceAccount", svc)
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("svc", SERVICES)
def test_service_probes_are_native_grpc(full_install: list[Resource], svc: str) -> None:
    """Startup, readiness and liveness use grpc.health.v1 on the gRPC port of the conventions."""
    grpc_port, _, service_name = SERVICES[svc]
    container = container_of(full_install, "Deployment", svc)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, probe
    assert container["readinessProbe"]["grpc"]["service"] == f"zoptal.{svc}.v1.{service_name}"
    # docs/conventions.md: `liveness` ignores dependencies, so an outage never restarts pods.
    assert container["livenessProbe"]["grpc"]["service"] == "liveness"
    assert container["startupProbe"]["grpc"]["service"] == "liveness"


@pytest.mark.parametrize("svc", SERVICES)
def test_termination_grace_outlasts_the_drain(full_install: list[Resource], svc: str) -> None:
    """Kubernetes must not SIGKILL a server during its drain and grace (about 30 s)."""
    spec = named(full_install, "Deployment", svc)["spec"]["template"]["spec"]
    config = next(
        c
        for c in of_kind(full_install, "ConfigMap")
        if c["metadata"]["name"].startswith("zoptal-config")
    )["data"]
    shutdown = float(config["SHUTDOWN_DRAIN_SECONDS"]) + float(config["SHUTDOWN_GRACE_SECONDS"])
    assert shutdown >= 30
    assert spec["terminationGracePeriodSeconds"] >= shutdown + 10, "room for the exporters' flush"


@pytest.mark.parametrize("svc", SERVICES)
def test_service_ports_follow_the_conventions(full_install: list[Resource], svc: str) -> None:
    """Port `grpc` with appProtocol grpc on the conventions' port, plus the metrics port."""
    grpc_port, metrics_port, _ = SERVICES[svc]
    ports = {p["name"]: p for p in named(full_install, "Service", svc)["spec"]["ports"]}
    assert ports["grpc"]["port"] == grpc_port
    assert ports["grpc"]["appProtocol"] == "grpc"
    assert ports["http-metrics"]["port"] == metrics_port
    if svc == "auth":
        assert ports["http-jwks"]["port"] == 8080
    env = {e["name"]: e.get("value") for e in container_of(full_install, "Deployment", svc)["env"]}
    assert (env["GRPC_PORT"], env["METRICS_PORT"]) == (str(grpc_port), str(metrics_port))


def test_every_service_port_names_its_protocol(full_install: list[Resource]) -> None:
    """Istio picks the protocol from the port name or appProtocol: none is left to sniffing."""
    unnamed = [
        f"{s['metadata']['name']}:{p['port']}"
        for s in of_kind(full_install, "Service")
        for p in s["spec"]["ports"]
        if not (p["name"] == "grpc" or p["name"].startswith(("http-", "tcp-")))
        or "appProtocol" not in p
    ]
    assert not unnamed


@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_has_pdb_hpa_and_migration_job(full_install: list[Resource], svc: str) -> None:
    """A PDB and an HPA (min 2) on the Deployment; a Job running `migrate` on the same image."""
    deployment = named(full_install, "Deployment", svc)
    pdb = named(full_install, "PodDisruptionBudget", svc)
    assert (
        pdb["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    hpa = named(full_install, "HorizontalPodAutoscaler", svc)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": svc,
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["args"] == ["migrate"]
    job = named(full_install, "Job", f"{svc}-migrate")
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    assert migrate["args"] == ["migrate"]
    assert migrate["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == svc


def test_celery_worker_is_deployed(full_install: list[Resource]) -> None:
    """The Notification worker runs its own image with the broker and SMTP settings."""
    worker = container_of(full_install, "Deployment", "notification-worker")
    assert worker["image"].startswith("zoptal/notification-worker:")
    refs = {ref["configMapRef"]["name"].rsplit("-", 1)[0] for ref in worker["envFrom"]}
    assert refs == {"zoptal-config", "notification-config"}
    assert "celery" in " ".join(worker["livenessProbe"]["exec"]["command"])


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: str(d.relative_to(REPO)))
def test_every_build_is_namespaced_and_its_references_resolve(
    kubectl: str, directory: Path
) -> None:
    """Everything lands in zoptal, and every envFrom ConfigMap, secretKeyRef and Secret or
    ConfigMap volume names a resource of the same build (generated hash suffixes included)."""
    resources = build(kubectl, directory)
    outside = [
        f"{r['kind']}/{r['metadata']['name']}"
        for r in resources
        if r["kind"] != "Namespace" and r["metadata"].get("namespace") != NAMESPACE
    ]
    assert not outside, f"not in namespace {NAMESPACE}: {outside}"
    config_maps = {c["metadata"]["name"] for c in of_kind(resources, "ConfigMap")}
    secrets = {s["metadata"]["name"]: s["data"] for s in of_kind(resources, "Secret")}
    problems = []
    for where, _, spec in pod_specs(resources):
        for volume in spec.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                problems.append(f"{where}: volume ConfigMap {volume['configMap']['name']}")
            if "secret" in volume and volume["secret"]["secretName"] not in secrets:
                problems.append(f"{where}: volume Secret {volume['secret']['secretName']}")
        for container in spec.get("initContainers", []) + spec["containers"]:
            for ref in container.get("envFrom", []):
                if ref["configMapRef"]["name"] not in config_maps:
                    problems.append(f"{where}: ConfigMap {ref['configMapRef']['name']}")
            for env in container.get("env", []):
                key_ref = env.get("valueFrom", {}).get("secretKeyRef")
                if key_ref and key_ref["key"] not in secrets.get(key_ref["name"], {}):
                    problems.append(f"{where}: Secret {key_ref['name']}/{key_ref['key']}")
    assert not problems, "\n".join(problems)


def test_every_env_name_is_a_convention(full_install: list[Resource]) -> None:
    """ConfigMap keys and container env of Zoptal pods are names docs/conventions.md lists."""
    names = set()
    for config_map in of_kind(full_install, "ConfigMap"):
        if not config_map["metadata"]["name"].startswith("postgres-init"):
            names |= set(config_map["data"])
    for _, meta, spec in pod_specs(full_install):
        if meta["labels"]["app"] not in THIRD_PARTY_APPS:
            names |= {e["name"] for c in spec["containers"] for e in c.get("env", [])}
    unknown = sorted(n for n in names if not is_convention_env(n))
    assert not unknown, f"not in docs/conventions.md: {unknown}"


@pytest.mark.parametrize(("name", "module"), sorted(SERVICE_SETTINGS.items()))
def test_service_specific_variables_are_read_by_their_service(name: str, module: str) -> None:
    """A variable beyond the shared conventions is a field of the settings object that reads it."""
    settings = REPO / module
    if not settings.exists():
        pytest.skip(f"{module} is not written yet")
    assert f"    {name.lower()}:" in settings.read_text()


def test_development_secrets_are_marked(full_install: list[Resource]) -> None:
    """The committed Secret says it holds development values, in the build and in its source."""
    secret = next(
        s
        for s in of_kind(full_install, "Secret")
        if s["metadata"]["name"].startswith("zoptal-secrets")
    )
    assert secret["metadata"]["annotations"]["zoptal.dev/development-values"] == "true"
    assert "DEVELOPMENT VALUES ONLY" in (K8S / "base" / "secrets.dev.env").read_text()
    urls = [
        base64.b64decode(v).decode()
        for k, v in secret["data"].items()
        if k.endswith("_DATABASE_URL")
    ]
    assert len(urls) == len(SERVICES)
    assert all(u.startswith("postgresql+asyncpg://") for u in urls)


def test_namespace_and_mesh_mode_follow_istio(kubectl: str, full_install: list[Resource]) -> None:
    """With the Istio component: injection on and MESH_MODE=istio; without it: neither."""
    plain = build(kubectl, K8S / "tests" / "no-istio")
    for resources, injected, mode in ((full_install, True, "istio"), (plain, False, "standalone")):
        namespace = named(resources, "Namespace", NAMESPACE)
        assert (
            namespace["metadata"].get("labels", {}).get("istio-injection") == "enabled"
        ) is injected
        config = next(
            c
            for c in of_kind(resources, "ConfigMap")
            if c["metadata"]["name"].startswith("zoptal-config")
        )
        assert config["data"]["MESH_MODE"] == mode
    assert not [r for r in plain if r["apiVersion"].endswith("istio.io/v1")]


def test_self_contained_install_has_its_datastores(full_install: list[Resource]) -> None:
    """PostgreSQL and Redis StatefulSets with volumes; external-postgres drops only PostgreSQL."""
    for name in ("postgres", "redis"):
        assert named(full_install, "StatefulSet", name)["spec"]["volumeClaimTemplates"]


def test_external_postgres_scenario_drops_the_statefulset(kubectl: str) -> None:
    """The external-postgres scenario has no in-cluster PostgreSQL and points URLs elsewhere."""
    resources = build(kubectl, K8S / "tests" / "external-postgres")
    assert [s["metadata"]["name"] for s in of_kind(resources, "StatefulSet")] == ["redis"]
    secret = next(
        s
        for s in of_kind(resources, "Secret")
        if s["metadata"]["name"].startswith("zoptal-secrets")
    )
    url = base64.b64decode(secret["data"]["AUTH_DATABASE_URL"]).decode()
    assert "@postgres:" not in url


def test_discovery_rbac_reads_only_endpointslices(full_install: list[Resource]) -> None:
    """Read access to EndpointSlices, bound to exactly the services whose code calls peers."""
    role = named(full_install, "Role", "endpointslice-reader")
    assert role["rules"] == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = named(full_install, "RoleBinding", "endpointslice-reader")
    assert {s["name"] for s in binding["subjects"]} == {caller for caller, _, _ in calls_in_code()}


def test_auth_loads_its_signing_keys_from_a_secret(full_install: list[Resource]) -> None:
    """JWT_SIGNING_KEY_DIR is the read-only mount of the auth-jwt-keys Secret holding a *.pem."""
    for kind, name in (("Deployment", "auth"), ("Job", "auth-migrate")):
        spec = named(full_install, kind, name)["spec"]["template"]["spec"]
        container = spec["containers"][0]
        key_dir = next(e["value"] for e in container["env"] if e["name"] == "JWT_SIGNING_KEY_DIR")
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == key_dir)
        assert mount["readOnly"] is True
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        secret = named(full_install, "Secret", volume["secret"]["secretName"])
        assert any(key.endswith(".pem") for key in secret["data"])


def test_only_api_clients_mount_a_service_account_token(full_install: list[Resource]) -> None:
    """A token is mounted only where the discovery Role is bound; everyone else has none."""
    bound = {
        s["name"] for s in named(full_install, "RoleBinding", "endpointslice-reader")["subjects"]
    }
    for account in of_kind(full_install, "ServiceAccount"):
        mounts = account.get("automountServiceAccountToken", True)
        assert mounts == (account["metadata"]["name"] in bound), account["metadata"]["name"]
