"""Each service's own settings object accepts the environment compose and Kubernetes give it.

The deployments run with ZOPTAL_ENV=production, so this also proves that they pass the
production checks (no development secret, no SQLite, Auth's keys from files), that every port
is the one of the conventions, and that the peers and MESH_MODE arrive as meant.
"""

from __future__ import annotations

import base64
import importlib
import re
from typing import Any

import pytest
import yaml

from tests.deploy.support import REPO, SERVICES, Resource, named, of_kind

INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def settings_class(svc: str) -> Any:
    module = REPO / "services" / svc / "src" / f"zoptal_{svc}" / "settings.py"
    if not module.exists():
        pytest.skip(f"{module.relative_to(REPO)} is not written yet")
    return getattr(importlib.import_module(f"zoptal_{svc}.settings"), f"{svc.capitalize()}Settings")


def compose_environment(service: str) -> dict[str, str]:
    """The container's environment as compose would set it with no variables exported."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    raw = compose["services"][service]["environment"]
    return {k: INTERPOLATION.sub(lambda m: m.group(2) or "", str(v)) for k, v in raw.items()}


def pod_environment(resources: list[Resource], kind: str, name: str) -> dict[str, str]:
    """envFrom ConfigMaps, then env (values, secretKeyRefs) of the workload's first container."""
    container = named(resources, kind, name)["spec"]["template"]["spec"]["containers"][0]
    config_maps = {c["metadata"]["name"]: c["data"] for c in of_kind(resources, "ConfigMap")}
    secrets = {s["metadata"]["name"]: s["data"] for s in of_kind(resources, "Secret")}
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        env.update(config_maps[ref["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            key_ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = base64.b64decode(secrets[key_ref["name"]][key_ref["key"]]).decode()
    return env


@pytest.mark.parametrize("svc", SERVICES)
def test_compose_environment_is_accepted_in_production(svc: str) -> None:
    """from_env() with the compose environment: production, conventions ports, Redis, peers."""
    settings = settings_class(svc).from_env(compose_environment(svc))
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
        assert settings.peers[peer] == (f"{peer}:{SERVICES[peer][0]}",)


@pytest.mark.parametrize("svc", SERVICES)
def test_kubernetes_environment_is_accepted_in_production(
    full_install: list[Resource], svc: str
) -> None:
    """from_env() with the Deployment's environment under Istio: production and MESH_MODE=istio."""
    cls = settings_class(svc)
    settings = cls.from_env(pod_environment(full_install, "Deployment", svc))
    assert settings.env == "production"
    assert settings.mesh_mode == "istio"
    assert settings.grpc_port == SERVICES[svc][0]
    assert settings.shutdown_drain_seconds + settings.shutdown_grace_seconds >= 30
    migrate = cls.from_env(pod_environment(full_install, "Job", f"{svc}-migrate"))
    assert migrate.database_url == settings.database_url


def test_the_worker_environment_is_accepted_in_both() -> None:
    """The Celery worker reads NotificationSettings: Redis broker and Mailpit in compose."""
    cls = settings_class("notification")
    settings = cls.from_env(compose_environment("notification-worker"))
    assert settings.celery_broker_url == "redis://redis:6379/1"
    assert (settings.smtp_host, settings.smtp_port) == ("mailpit", 1025)


def test_the_worker_environment_is_accepted_in_kubernetes(full_install: list[Resource]) -> None:
    """The worker Deployment's environment passes the production checks too."""
    cls = settings_class("notification")
    settings = cls.from_env(pod_environment(full_install, "Deployment", "notification-worker"))
    assert settings.celery_broker_url.startswith("redis://redis:6379/")
    assert settings.env == "production"
