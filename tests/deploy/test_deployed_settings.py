"""Each service's own settings object accepts the environment compose and Kubernetes give it.

The deployments run with ZOPTAL_ENV=production, so this also proves that they pass the
production checks (no development secret, no SQLite, Auth's keys from files), that every port
is the one of the conventions, and that the peers and MESH_MODE arrive as meant.

The deployments are written against the identity contract (service credentials, mTLS files,
DATABASE_PASSWORD_FILE): until the settings have its fields these checks skip, saying so. The
files the environment names are made for real in a temporary folder (credentials, password,
and the certificates by `python -m meshcore.pki`), since the settings may read them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshcore.discovery.peers import kubernetes_service

from tests.deploy.support import K8S, REPO, SERVICES, Resource, build, named, of_kind

INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
# Fields identity contract A and B add to ServiceSettings.
CONTRACT_FIELDS = {"service_credentials_file", "mtls_port", "tls_cert_file", "tls_key_file"}
CREDENTIAL_HOLDERS = ("project", "billing", "notification", "analytics")


def settings_class(svc: str) -> Any:
    module = REPO / "services" / svc / "src" / f"zoptal_{svc}" / "settings.py"
    if not module.exists():
        pytest.skip(f"{module.relative_to(REPO)} is not written yet")
    cls = getattr(importlib.import_module(f"zoptal_{svc}.settings"), f"{svc.capitalize()}Settings")
    missing = CONTRACT_FIELDS - {f.name for f in dataclasses.fields(cls)}
    if missing:
        pytest.skip(f"{cls.__name__} lacks identity-contract fields {sorted(missing)} (not merged)")
    return cls


def materialise(env: dict[str, str], root: Path) -> dict[str, str]:
    """The environment with each *_FILE moved under ``root``, where the file now exists as the
    deployment would have it: certificates from meshcore.pki, a credential, a password."""
    moved = dict(env)
    for name, value in env.items():
        if not name.endswith("_FILE"):
            continue
        path = root / value.lstrip("/")
        moved[name] = str(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists():
            continue
        if name.startswith("TLS_"):
            ca = root / "ca"
            pki = [sys.executable, "-m", "meshcore.pki"]
            subprocess.run([*pki, "ensure-ca", "--dir", str(ca)], check=True)
            service = env.get("OTEL_SERVICE_NAME", "auth")
            issue = ["ensure", "--ca-dir", str(ca), "--out", str(path.parent), "--service", service]
            subprocess.run([*pki, *issue], check=True)
        elif name == "SERVICE_CREDENTIALS_FILE":
            credential = {
                "service": env["OTEL_SERVICE_NAME"],
                "client_id": f"sa_{secrets.token_hex(12)}",
                "client_secret": secrets.token_urlsafe(32),
            }
            path.write_text(json.dumps(credential))
            path.chmod(0o600)
        else:
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o440)
    return moved


def compose_environment(service: str) -> dict[str, str]:
    """The container's environment as compose would set it with no variables exported."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    raw = compose["services"][service]["environment"]
    return {k: INTERPOLATION.sub(lambda m: m.group(2) or "", str(v)) for k, v in raw.items()}


def pod_environment(
    resources: list[Resource], kind: str, name: str, *, init: str | None = None
) -> dict[str, str]:
    """envFrom ConfigMaps, then env (values, configMapKeyRefs) of the workload's first container
    (or its init container ``init``). Nothing comes from a Secret: secrets are mounted as
    files."""
    spec = named(resources, kind, name)["spec"]["template"]["spec"]
    if init is None:
        container = spec["containers"][0]
    else:
        (container,) = [c for c in spec["initContainers"] if c["name"] == init]
    config_maps = {c["metadata"]["name"]: c["data"] for c in of_kind(resources, "ConfigMap")}
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        env.update(config_maps[ref["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            key_ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = config_maps[key_ref["name"]][key_ref["key"]]
    return env


@pytest.mark.parametrize("svc", SERVICES)
def test_compose_environment_is_accepted_in_production(svc: str, tmp_path: Path) -> None:
    """from_env() with the compose environment: production, conventions ports, Redis, peers on
    their mTLS ports, its own certificate and (callers) its own credential."""
    cls = settings_class(svc)
    settings = cls.from_env(materialise(compose_environment(svc), tmp_path))
    grpc_port, metrics_port, _ = SERVICES[svc]
    assert settings.env == "production"
    assert (settings.grpc_host, settings.grpc_port, settings.metrics_port) == (
        "0.0.0.0",
        grpc_port,
        metrics_port,
    )
    assert settings.mesh_mode == "standalone"
    assert settings.redis_url == "redis://redis:6379/0"
    for peer in settings.peers:
        assert settings.peers[peer] == (f"{peer}:{SERVICES[peer][0] + 1000}",)
    assert settings.mtls_port == grpc_port + 1000
    assert settings.tls_cert_file is not None
    assert settings.tls_key_file is not None
    assert (settings.service_credentials_file is not None) == (svc in CREDENTIAL_HOLDERS)


@pytest.mark.parametrize("svc", SERVICES)
def test_kubernetes_environment_is_accepted_in_production(
    full_install: list[Resource], svc: str, tmp_path: Path
) -> None:
    """from_env() with the Deployment's environment under Istio: production, MESH_MODE=istio,
    meshcore plaintext behind the sidecar, and (callers) the mounted credential."""
    cls = settings_class(svc)
    environment = materialise(pod_environment(full_install, "Deployment", svc), tmp_path)
    settings = cls.from_env(environment)
    assert settings.env == "production"
    assert settings.mesh_mode == "istio"
    assert settings.grpc_port == SERVICES[svc][0]
    assert settings.shutdown_drain_seconds + settings.shutdown_grace_seconds >= 30
    assert settings.mtls_port == 0
    assert settings.tls_cert_file is None
    assert (settings.service_credentials_file is not None) == (svc in CREDENTIAL_HOLDERS)
    assert settings.service_discovery == "static"
    migrate = cls.from_env(
        materialise(pod_environment(full_install, "Deployment", svc, init="migrate"), tmp_path)
    )
    assert migrate.database_url == settings.database_url


@pytest.mark.parametrize("svc", SERVICES)
def test_plain_kubernetes_environment_watches_the_peers_services(
    kubectl: str, svc: str, tmp_path: Path
) -> None:
    """Without Istio (k8s/tests/no-istio): standalone, Kubernetes discovery, and each peer's
    <SVC>_ADDR names a Service of the install, whose port `grpc` the pods are called on."""
    resources = build(kubectl, K8S / "tests" / "no-istio")
    cls = settings_class(svc)
    settings = cls.from_env(materialise(pod_environment(resources, "Deployment", svc), tmp_path))
    assert (settings.mesh_mode, settings.service_discovery) == ("standalone", "kubernetes")
    for peer, (address,) in settings.peers.items():
        service, namespace = kubernetes_service(address)
        assert namespace is None, "the pod's own namespace"
        ports = {p["name"] for p in named(resources, "Service", service)["spec"]["ports"]}
        assert "grpc" in ports, peer


def test_the_worker_environment_is_accepted_in_both(tmp_path: Path) -> None:
    """The Celery worker reads NotificationSettings: Redis broker and Mailpit in compose."""
    cls = settings_class("notification")
    settings = cls.from_env(materialise(compose_environment("notification-worker"), tmp_path))
    assert settings.celery_broker_url == "redis://redis:6379/1"
    assert (settings.smtp_host, settings.smtp_port) == ("mailpit", 1025)


def test_the_worker_environment_is_accepted_in_kubernetes(
    full_install: list[Resource], tmp_path: Path
) -> None:
    """The worker Deployment's environment passes the production checks too."""
    cls = settings_class("notification")
    environment = pod_environment(full_install, "Deployment", "notification-worker")
    settings = cls.from_env(materialise(environment, tmp_path))
    assert settings.celery_broker_url.startswith("redis://redis:6379/")
    assert settings.env == "production"
