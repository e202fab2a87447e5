"""docker-compose.yml: valid against the Compose specification, and `up --wait` can succeed."""

from __future__ import annotations

import json
import re
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.support import REPO, SERVICES, is_convention_env

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
WORKER = "notification-worker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def one_shots(compose: dict[str, Any]) -> set[str]:
    """Services some other service waits on with service_completed_successfully."""
    return {
        dependency
        for service in compose["services"].values()
        for dependency, how in service.get("depends_on", {}).items()
        if how["condition"] == "service_completed_successfully"
    }


def zoptal_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The containers built from our Dockerfile."""
    return {name: s for name, s in compose["services"].items() if "build" in s}


def test_compose_file_validates_against_the_spec(compose: dict[str, Any]) -> None:
    """The Compose specification's JSON schema accepts the file."""
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_the_schema_rejects_a_bad_compose_file(compose: dict[str, Any]) -> None:
    """The check can fail: an unknown service key is an error."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["auth"]["healthcheckk"] = {}
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert not jsonschema.Draft202012Validator(schema).is_valid(broken)


def test_every_long_running_container_has_a_health_check(compose: dict[str, Any]) -> None:
    """`docker compose up --wait` needs a health state for every service that keeps running."""
    finished = one_shots(compose)
    missing = [
        name
        for name, service in compose["services"].items()
        if name not in finished and not service.get("healthcheck", {}).get("test")
    ]
    assert not missing


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    """Every depends_on names a condition: healthy for servers, completed for one-shots."""
    finished = one_shots(compose)
    for name, service in compose["services"].items():
        for dependency, how in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully" if dependency in finished else "service_healthy"
            )
            assert how["condition"] == expected, f"{name} -> {dependency}"


def test_migrations_run_before_each_service(compose: dict[str, Any]) -> None:
    """<svc>-migrate runs `migrate` on the service's image once PostgreSQL is healthy."""
    services = compose["services"]
    for svc in SERVICES:
        migrate = services[f"{svc}-migrate"]
        assert migrate["command"] == ["migrate"]
        assert migrate["image"] == services[svc]["image"]
        assert migrate["restart"] == "no"
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[svc]["depends_on"][f"{svc}-migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services[WORKER]["depends_on"]["notification-migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_start_order_has_no_cycle(compose: dict[str, Any]) -> None:
    """The dependency graph is a DAG, so compose can start it."""
    graph = {name: set(s.get("depends_on", {})) for name, s in compose["services"].items()}
    order = list(TopologicalSorter(graph).static_order())
    assert order.index("auth") < order.index("project")


@pytest.mark.parametrize("svc", SERVICES)
def test_service_settings_follow_the_conventions(compose: dict[str, Any], svc: str) -> None:
    """Ports, database, peers and the health probe agree with docs/conventions.md."""
    grpc_port, metrics_port, service_name = SERVICES[svc]
    service = compose["services"][svc]
    env = service["environment"]
    assert (env["GRPC_PORT"], env["METRICS_PORT"]) == (str(grpc_port), str(metrics_port))
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["DATABASE_URL"].endswith(f"@postgres:5432/{svc}")
    for peer, (peer_port, _, _) in SERVICES.items():
        assert env[f"{peer.upper()}_ADDR"] == f"{peer}:{peer_port}"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"
    probe = service["healthcheck"]["test"]
    assert probe[:4] == ["CMD", "python", "-m", "meshcore.health_probe"]
    assert f"127.0.0.1:{grpc_port}" in probe
    assert f"zoptal.{svc}.v1.{service_name}" in probe
    assert service["build"]["target"] == svc


def test_zoptal_containers_are_hardened(compose: dict[str, Any]) -> None:
    """Read-only root with a tmpfs /tmp, no capabilities, no privilege escalation."""
    for name, service in zoptal_services(compose).items():
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_zoptal_environment_names_are_conventions(compose: dict[str, Any]) -> None:
    """Every variable a Zoptal container gets is one docs/conventions.md lists."""
    names = {n for s in zoptal_services(compose).values() for n in s.get("environment", {})}
    unknown = sorted(n for n in names if not is_convention_env(n))
    assert not unknown, f"not in docs/conventions.md: {unknown}"


def test_notification_and_worker_reach_redis_and_mailpit(compose: dict[str, Any]) -> None:
    """Celery on Redis and SMTP to Mailpit, for the service and its worker alike."""
    for name in ("notification", WORKER):
        env = compose["services"][name]["environment"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
        assert (env["SMTP_HOST"], env["SMTP_PORT"]) == ("mailpit", "1025")
    assert compose["services"][WORKER]["build"]["target"] == WORKER


def test_prometheus_scrapes_every_metrics_port(compose: dict[str, Any]) -> None:
    """The mounted prometheus.yml has a target for each service's metrics port."""
    mount = next(v for v in compose["services"]["prometheus"]["volumes"] if "prometheus.yml" in v)
    config = yaml.safe_load((REPO / mount.split(":")[0]).read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert {f"{svc}:{metrics}" for svc, (_, metrics, _) in SERVICES.items()} <= targets


def test_postgres_creates_one_database_per_service(compose: dict[str, Any]) -> None:
    """The init script (shared with k8s) creates each database named in ZOPTAL_DATABASES."""
    postgres = compose["services"]["postgres"]
    assert set(postgres["environment"]["ZOPTAL_DATABASES"].split()) == set(SERVICES)
    mount = next(v for v in postgres["volumes"] if "initdb.d" in v)
    script = REPO / mount.split(":")[0]
    assert re.search(r'CREATE DATABASE \\"\$db\\"', script.read_text())
    assert script.stat().st_mode & 0o111, "the entrypoint runs *.sh only when executable"


def test_auth_signs_with_a_generated_key_file(compose: dict[str, Any]) -> None:
    """Production Auth loads keys from files: a one-shot generates one into a volume first."""
    services = compose["services"]
    keygen = services["auth-keygen"]
    assert "generate-key /var/lib/zoptal/keys" in keygen["command"][0]
    assert "auth-keys:/var/lib/zoptal/keys" in keygen["volumes"]
    assert services["auth"]["environment"]["JWT_SIGNING_KEY_DIR"] == "/var/lib/zoptal/keys"
    assert "auth-keys:/var/lib/zoptal/keys:ro" in services["auth"]["volumes"]
    assert services["auth"]["depends_on"]["auth-keygen"]["condition"] == (
        "service_completed_successfully"
    )
