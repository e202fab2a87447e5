"""The Kubernetes workloads keep the properties issue 7 asks for, in every build that ships them."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import (
    K8S,
    NAMESPACE,
    REPO,
    SERVICE_SETTINGS,
    SERVICES,
    WORKER_METRICS_PORT,
    Resource,
    build,
    calls_in_code,
    is_convention_env,
    kustomizations,
    named,
    of_kind,
)

THIRD_PARTY_APPS = {"postgres", "redis", "mailpit"}
# Identity contract A: the services that call peers hold a credential; Auth and the worker do not.
CREDENTIAL_HOLDERS = ("project", "billing", "notification", "analytics")
SECRET_FILE_MODE = 0o440
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
def test_each_service_has_pdb_hpa_and_migrates_first(
    full_install: list[Resource], svc: str
) -> None:
    """A PDB and an HPA (min 2) on the Deployment, whose first init container runs `migrate` on
    the server's image with the server's database settings."""
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
    spec = deployment["spec"]["template"]["spec"]
    migrate = spec["initContainers"][0]
    assert migrate["args"] == ["migrate"]
    (server,) = spec["containers"]
    assert migrate["image"] == server["image"]
    database = [e for e in server["env"] if e["name"].startswith("DATABASE_")]
    assert [e for e in migrate["env"] if e["name"].startswith("DATABASE_")] == database


@pytest.mark.parametrize("svc", SERVICES)
def test_replicas_spread_over_zones_and_nodes(full_install: list[Resource], svc: str) -> None:
    """Each service's replicas spread by zone and by node, softly, per ReplicaSet."""
    spec = named(full_install, "Deployment", svc)["spec"]["template"]["spec"]
    spreads = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert set(spreads) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in spreads.values():
        assert constraint["labelSelector"] == {"matchLabels": {"app": svc}}
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_celery_worker_is_deployed(full_install: list[Resource]) -> None:
    """The Notification worker runs its own image with the broker and SMTP settings, and an
    emptyDir on /tmp (the image's HOME, TMPDIR and DATA_DIR, under a read-only root)."""
    spec = named(full_install, "Deployment", "notification-worker")["spec"]["template"]["spec"]
    worker = container_of(full_install, "Deployment", "notification-worker")
    assert worker["image"].startswith("zoptal/notification-worker:")
    refs = {ref["configMapRef"]["name"].rsplit("-", 1)[0] for ref in worker["envFrom"]}
    assert refs == {"zoptal-config", "notification-config"}
    assert "celery" in " ".join(worker["livenessProbe"]["exec"]["command"])
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in spec["volumes"]}[mounts["/tmp"]]


def test_celery_worker_is_scraped_on_its_metrics_port(full_install: list[Resource]) -> None:
    """Its delivery metrics: the port and the prometheus.io annotations (job "zoptal" with the
    pod's app label as service)."""
    deployment = named(full_install, "Deployment", "notification-worker")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(WORKER_METRICS_PORT)
    worker = container_of(full_install, "Deployment", "notification-worker")
    assert {p["name"]: p["containerPort"] for p in worker["ports"]} == {
        "http-metrics": WORKER_METRICS_PORT
    }
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT)


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: str(d.relative_to(REPO)))
def test_every_build_is_namespaced_and_its_references_resolve(
    kubectl: str, generated_secrets: list[Resource], directory: Path
) -> None:
    """Everything lands in zoptal (but the egress gateway's AuthorizationPolicy, which must be
    in the gateway's namespace, istio-system), and every envFrom ConfigMap, configMapKeyRef and
    ConfigMap volume names a resource of the same build (generated hash suffixes included);
    every Secret
    volume names one scripts/k8s_secrets.sh makes, and none is optional, so a missing Secret
    stops the pod instead of starting it without its credential."""
    resources = build(kubectl, directory)
    outside = [
        f"{r['kind']}/{r['metadata']['name']}"
        for r in resources
        if r["kind"] != "Namespace"
        and r["metadata"].get("namespace") != NAMESPACE
        and (r["kind"], r["metadata"]["name"]) != ("AuthorizationPolicy", "zoptal-smtp-relay")
    ]
    assert not outside, f"not in namespace {NAMESPACE}: {outside}"
    config_maps = {c["metadata"]["name"]: c["data"] for c in of_kind(resources, "ConfigMap")}
    secrets = {s["metadata"]["name"]: s["data"] for s in generated_secrets}
    problems = []
    for where, _, spec in pod_specs(resources):
        for volume in spec.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                problems.append(f"{where}: volume ConfigMap {volume['configMap']['name']}")
            if "secret" in volume:
                if volume["secret"]["secretName"] not in secrets:
                    problems.append(f"{where}: volume Secret {volume['secret']['secretName']}")
                if volume["secret"].get("optional"):
                    problems.append(f"{where}: optional Secret {volume['secret']['secretName']}")
        for container in spec.get("initContainers", []) + spec["containers"]:
            for ref in container.get("envFrom", []):
                if ref["configMapRef"]["name"] not in config_maps:
                    problems.append(f"{where}: ConfigMap {ref['configMapRef']['name']}")
            for env in container.get("env", []):
                value_from = env.get("valueFrom", {})
                if "secretKeyRef" in value_from:
                    problems.append(f"{where}: {env['name']} from a Secret (mount it as a file)")
                key_ref = value_from.get("configMapKeyRef")
                if key_ref and key_ref["key"] not in config_maps.get(key_ref["name"], {}):
                    problems.append(f"{where}: ConfigMap {key_ref['name']}/{key_ref['key']}")
    assert not problems, "\n".join(problems)


def test_every_env_name_is_a_convention(full_install: list[Resource]) -> None:
    """ConfigMap keys and container env of Zoptal pods are names docs/conventions.md lists."""
    names = set()
    for config_map in of_kind(full_install, "ConfigMap"):
        # postgres-init holds a script and zoptal-databases the keys configMapKeyRefs look up.
        if not config_map["metadata"]["name"].startswith(("postgres-init", "zoptal-databases")):
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


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: str(d.relative_to(REPO)))
def test_no_build_carries_a_secret(kubectl: str, directory: Path) -> None:
    """No Secret is rendered and no ConfigMap holds a database password: every secret comes from
    scripts/k8s_secrets.sh at install time."""
    resources = build(kubectl, directory)
    assert not of_kind(resources, "Secret")
    for config_map in of_kind(resources, "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            if key.endswith("_URL"):
                assert not re.match(r"\w[\w+.-]*://[^/@]*:[^/@]*@", value), f"{key}: a password"


def test_the_repository_holds_no_secret_for_k8s() -> None:
    """No private key, no secret env file, no SERVICE_TOKEN_SECRET under k8s/; the script's
    output folder is git-ignored."""
    for path in K8S.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "PRIVATE KEY" not in text, path
            assert "SERVICE_TOKEN_SECRET" not in text, path
            assert not path.name.endswith((".pem", ".key")), path
            assert "secret" not in path.name.lower(), path
    ignored = (REPO / ".gitignore").read_text().split()
    assert "/.secrets/" in ignored


def test_generated_secrets_follow_the_contract(generated_secrets: list[Resource]) -> None:
    """The script makes Auth's signing key, the database password and one credential per caller,
    in the format of identity contract A (client_id sa_ + 24 hex, a 256-bit secret)."""
    secrets = {s["metadata"]["name"]: s for s in generated_secrets}
    assert set(secrets) == {"auth-jwt-keys", "postgres-password"} | {
        f"{svc}-identity" for svc in CREDENTIAL_HOLDERS
    }
    assert all(s["metadata"]["namespace"] == NAMESPACE for s in generated_secrets)
    (key_file,) = secrets["auth-jwt-keys"]["data"]
    assert key_file.endswith(".pem")
    assert "PRIVATE KEY" in base64.b64decode(secrets["auth-jwt-keys"]["data"][key_file]).decode()
    password = base64.b64decode(secrets["postgres-password"]["data"]["password"])
    assert len(password) >= 43
    for svc in CREDENTIAL_HOLDERS:
        data = secrets[f"{svc}-identity"]["data"]
        credential = json.loads(base64.b64decode(data["credentials.json"]))
        assert set(credential) == {"service", "client_id", "client_secret"}
        assert credential["service"] == svc
        assert re.fullmatch(r"sa_[0-9a-f]{24}", credential["client_id"])
        assert len(base64.urlsafe_b64decode(credential["client_secret"] + "=")) == 32


def test_namespace_and_mesh_mode_follow_istio(kubectl: str, full_install: list[Resource]) -> None:
    """With the Istio component: injection on, MESH_MODE=istio and static discovery (the
    sidecar balances); without it: no injection, standalone, and the services watch their
    peers' EndpointSlices (SERVICE_DISCOVERY=kubernetes), so calls balance per call."""
    plain = build(kubectl, K8S / "tests" / "no-istio")
    for resources, injected, mode, discovery in (
        (full_install, True, "istio", "static"),
        (plain, False, "standalone", "kubernetes"),
    ):
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
        assert config["data"].get("SERVICE_DISCOVERY", "static") == discovery
        assert "SERVICE_DISCOVERY_NAMESPACE" not in config["data"], "the pod's own namespace"
    assert not [r for r in plain if r["apiVersion"].endswith("istio.io/v1")]


def test_self_contained_install_has_its_datastores(full_install: list[Resource]) -> None:
    """PostgreSQL and Redis StatefulSets with volumes; external-postgres drops only PostgreSQL."""
    for name in ("postgres", "redis"):
        assert named(full_install, "StatefulSet", name)["spec"]["volumeClaimTemplates"]


def test_external_postgres_scenario_drops_the_statefulset(kubectl: str) -> None:
    """The external-postgres scenario has no in-cluster PostgreSQL and points URLs elsewhere."""
    resources = build(kubectl, K8S / "tests" / "external-postgres")
    assert [s["metadata"]["name"] for s in of_kind(resources, "StatefulSet")] == ["redis"]
    databases = next(
        c
        for c in of_kind(resources, "ConfigMap")
        if c["metadata"]["name"].startswith("zoptal-databases")
    )
    assert "@postgres:" not in databases["data"]["AUTH_DATABASE_URL"]


def test_discovery_rbac_reads_only_endpointslices(
    kubectl: str, full_install: list[Resource]
) -> None:
    """Without Istio: read access to EndpointSlices in the namespace (a Role, not a
    ClusterRole), bound to exactly the services whose code calls peers. Under Istio none."""
    assert not [r for r in full_install if r["kind"] in {"Role", "RoleBinding"}]
    plain = build(kubectl, K8S / "tests" / "no-istio")
    assert not [r for r in plain if r["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    assert [r["metadata"]["name"] for r in plain if r["kind"] in {"Role", "RoleBinding"}] == [
        "endpointslice-reader",
        "endpointslice-reader",
    ]
    role = named(plain, "Role", "endpointslice-reader")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = named(plain, "RoleBinding", "endpointslice-reader")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "endpointslice-reader",
    }
    assert {(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]} == {
        ("ServiceAccount", caller, NAMESPACE) for caller, _, _ in calls_in_code()
    }


def test_auth_loads_its_signing_keys_from_a_secret(
    full_install: list[Resource], generated_secrets: list[Resource]
) -> None:
    """JWT_SIGNING_KEY_DIR is the read-only mount of the auth-jwt-keys Secret holding a *.pem."""
    spec = named(full_install, "Deployment", "auth")["spec"]["template"]["spec"]
    for container in spec["initContainers"] + spec["containers"]:
        key_dir = next(e["value"] for e in container["env"] if e["name"] == "JWT_SIGNING_KEY_DIR")
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == key_dir)
        assert mount["readOnly"] is True
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        secret = named(generated_secrets, "Secret", volume["secret"]["secretName"])
        assert any(key.endswith(".pem") for key in secret["data"])


def test_only_api_clients_mount_a_service_account_token(
    kubectl: str, full_install: list[Resource]
) -> None:
    """A token is mounted only where the discovery Role is bound (without Istio); under Istio
    nowhere (the sidecar brings its own, for istiod only)."""
    plain = build(kubectl, K8S / "tests" / "no-istio")
    bound = {s["name"] for s in named(plain, "RoleBinding", "endpointslice-reader")["subjects"]}
    for resources, api_clients in ((plain, bound), (full_install, set())):
        for account in of_kind(resources, "ServiceAccount"):
            mounts = account.get("automountServiceAccountToken", True)
            name = account["metadata"]["name"]
            assert mounts == (name in api_clients), name
        for where, _, spec in pod_specs(resources):
            assert "automountServiceAccountToken" not in spec, f"{where}: the account decides"


def secret_volumes(spec: Resource) -> dict[str, Resource]:
    return {v["name"]: v["secret"] for v in spec.get("volumes", []) if "secret" in v}


def mounted_secrets(spec: Resource, container: Resource) -> dict[str, str]:
    """Secret name -> mount path, for one container of the pod."""
    volumes = secret_volumes(spec)
    return {
        volumes[m["name"]]["secretName"]: m["mountPath"]
        for m in container.get("volumeMounts", [])
        if m["name"] in volumes
    }


def test_secret_files_are_readable_by_the_pod_user_only(full_install: list[Resource]) -> None:
    """Secret volumes are mode 0440 with the pod's fsGroup as their group: the service's user
    reads them, other users cannot; every mount of one is read-only."""
    problems = []
    for where, _, spec in pod_specs(full_install):
        volumes = secret_volumes(spec)
        for name, secret in volumes.items():
            if secret.get("defaultMode") != SECRET_FILE_MODE:
                problems.append(f"{where}: {name} mode {oct(secret.get('defaultMode', 0o644))}")
        if volumes:
            pod = spec["securityContext"]
            if pod.get("fsGroup") != pod.get("runAsGroup"):
                problems.append(f"{where}: fsGroup is not the pod's group")
        for container in spec.get("initContainers", []) + spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] in volumes and mount.get("readOnly") is not True:
                    problems.append(f"{where}/{container['name']}: {mount['name']} writable")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("svc", [*SERVICES, "notification-worker"])
def test_each_workload_mounts_only_its_own_credential(
    full_install: list[Resource], svc: str
) -> None:
    """A caller's server container mounts its own <svc>-identity and reads it through
    SERVICE_CREDENTIALS_FILE; its migration and every other workload mount no credential."""
    spec = named(full_install, "Deployment", svc)["spec"]["template"]["spec"]
    (main,) = spec["containers"]
    identities = {n for n in mounted_secrets(spec, main) if n.endswith("-identity")}
    env = {e["name"]: e.get("value") for e in main.get("env", [])}
    if svc in CREDENTIAL_HOLDERS:
        assert identities == {f"{svc}-identity"}
        path = mounted_secrets(spec, main)[f"{svc}-identity"]
        assert env["SERVICE_CREDENTIALS_FILE"] == f"{path}/credentials.json"
    else:
        assert not identities
        assert "SERVICE_CREDENTIALS_FILE" not in env
    for init in spec.get("initContainers", []):
        if init["name"] != "service-identity":  # Auth's registration of the credentials
            assert not [n for n in mounted_secrets(spec, init) if n.endswith("-identity")]


def test_credentials_are_registered_before_auth_serves(full_install: list[Resource]) -> None:
    """Auth's init containers: `migrate`, then the contract's `service-identity ensure` over the
    four Secrets mounted at /identities/<svc>, with Auth's image and database settings; the
    server container mounts none of them."""
    auth = named(full_install, "Deployment", "auth")["spec"]["template"]["spec"]
    assert auth["serviceAccountName"] == "auth"
    migrate, ensure = auth["initContainers"]
    assert migrate["args"] == ["migrate"]
    (server,) = auth["containers"]
    assert ensure["image"] == migrate["image"] == server["image"]
    assert ensure["args"] == [
        "service-identity",
        "ensure",
        "--credentials-dir",
        "/identities",
        *CREDENTIAL_HOLDERS,
    ]
    mounts = mounted_secrets(auth, ensure)
    assert {n: p for n, p in mounts.items() if n.endswith("-identity")} == {
        f"{svc}-identity": f"/identities/{svc}" for svc in CREDENTIAL_HOLDERS
    }
    assert not [n for n in mounted_secrets(auth, server) if n.endswith("-identity")]

    def database_env(container: Resource) -> list[Resource]:
        return [e for e in container["env"] if e["name"].startswith("DATABASE_")]

    assert database_env(ensure) == database_env(server) == database_env(migrate)


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: str(d.relative_to(REPO)))
def test_no_build_has_a_job(kubectl: str, directory: Path) -> None:
    """No Job: its pod template is immutable, and one naming a generated ConfigMap or an image
    tag would make the next `kubectl apply -k` fail after any change (migrations and the
    credential registration are init containers instead)."""
    assert not of_kind(build(kubectl, directory), "Job")


def test_database_password_is_a_file_everywhere(full_install: list[Resource]) -> None:
    """Every container with a DATABASE_URL reads the password from the mounted postgres-password
    Secret; PostgreSQL initialises from the same file."""
    for where, _, spec in pod_specs(full_install):
        for container in spec.get("initContainers", []) + spec["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            if "DATABASE_URL" in env:
                path = mounted_secrets(spec, container)["postgres-password"]
                assert env["DATABASE_PASSWORD_FILE"]["value"] == f"{path}/password", where
    postgres = named(full_install, "StatefulSet", "postgres")["spec"]["template"]["spec"]
    (container,) = postgres["containers"]
    env = {e["name"]: e for e in container["env"]}
    path = mounted_secrets(postgres, container)["postgres-password"]
    assert env["POSTGRES_PASSWORD_FILE"]["value"] == f"{path}/password"
    assert "POSTGRES_PASSWORD" not in env


def test_meshcore_stays_plaintext_behind_the_sidecars(full_install: list[Resource]) -> None:
    """Under Istio the sidecars do mTLS: no TLS_* files or MTLS_PORT for meshcore."""
    names = {
        e["name"]
        for _, _, spec in pod_specs(full_install)
        for c in spec.get("initContainers", []) + spec["containers"]
        for e in c.get("env", [])
    }
    names |= {
        key
        for c in of_kind(full_install, "ConfigMap")
        if c["metadata"]["name"].startswith("zoptal-config")
        for key in c["data"]
    }
    assert not {n for n in names if n.startswith("TLS_") or n == "MTLS_PORT"}


# What the API server refuses to change on `kubectl apply` (kind -> immutable spec fields).
IMMUTABLE = {
    "Deployment": ("selector",),
    "StatefulSet": ("selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy"),
    "Job": ("selector", "template"),
    "Service": ("clusterIP",),
}


def test_applying_again_after_a_change_touches_no_immutable_field(
    kubectl: str, tmp_path: Path
) -> None:
    """`kubectl apply -k k8s/` twice, with a config value and every image tag changed in between,
    only updates resources: no immutable field of any workload or Service differs between the
    two builds (the generated ConfigMaps get new hash-suffixed names and new rollouts)."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    config = copy / "base" / "config.env"
    config.write_text(config.read_text().replace("LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG"))
    kustomization = copy / "base" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("newTag: 0.1.0", "newTag: 0.1.1"))
    before, after = build(kubectl, K8S), build(kubectl, copy)
    assert before != after, "the change changed nothing: the test would prove nothing"

    def immutable(resources: list[Resource]) -> dict[tuple[str, str], list[object]]:
        return {
            (r["kind"], r["metadata"]["name"]): [r["spec"].get(f) for f in IMMUTABLE[r["kind"]]]
            for r in resources
            if r["kind"] in IMMUTABLE
        }

    first, second = immutable(before), immutable(after)
    assert first.keys() == second.keys()
    changed = sorted(
        f"{kind}/{name}" for kind, name in first if first[kind, name] != second[kind, name]
    )
    assert not changed, f"the second apply would be refused for {changed}"


def test_the_registry_override_points_every_image_at_the_registry(
    kubectl: str, tmp_path: Path
) -> None:
    """`scripts/k8s_load_images.sh registry` prints an `images:` block that, in an overlay of
    k8s/, moves every Zoptal image of the install to $REGISTRY at the pinned tag, and the six
    images it (and kind/minikube loading) knows are exactly the install's."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "k8s_load_images.sh"), "registry"],
        env={**os.environ, "REGISTRY": "registry.example.com/team"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    overlay = tmp_path / "install"
    overlay.mkdir()
    # kustomize takes a base by relative path only
    base = os.path.relpath(K8S, overlay)
    (overlay / "kustomization.yaml").write_text(f"resources:\n  - {base}\n{done.stdout}")
    installed = {
        c["image"]
        for _, _, spec in pod_specs(build(kubectl, K8S))
        for c in spec.get("initContainers", []) + spec["containers"]
        if c["image"].startswith("zoptal/")
    }
    moved = {
        c["image"]
        for _, _, spec in pod_specs(build(kubectl, overlay))
        for c in spec.get("initContainers", []) + spec["containers"]
        if "zoptal/" in c["image"]
    }
    assert len(installed) == 6
    assert moved == {f"registry.example.com/team/{image}" for image in installed}
