"""docker-compose.yml: valid against the Compose specification, `up --wait` can succeed on Docker
Engine 20.10, each of our images is built once and never pulled, host ports clear of the
developer setup, and no secret is in the file: every one is generated at first start into a
volume, and each service mounts only its own identity."""

from __future__ import annotations

import json
import re
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from zoptal_platform.launcher import SMTP_SINK_PORT

from tests.deploy.support import REPO, SERVICES, is_convention_env

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
WORKER = "notification-worker"
# Contract A: the services that call peers hold a credential; Auth and the worker do not.
CREDENTIAL_HOLDERS = ("project", "billing", "notification", "analytics")
# MTLS_PORT of each service: 5000 + n, mirroring GRPC_PORT 4000 + n (docs/conventions.md).
MTLS_PORTS = {svc: grpc_port + 1000 for svc, (grpc_port, _, _) in SERVICES.items()}
IDENTITY_MOUNT = "/var/lib/zoptal/identity"
# The only ${...} substitutions the file may use: none of them is a secret.
ALLOWED_INTERPOLATIONS = {"LOG_LEVEL", "ZOPTAL_TAG", "ZOPTAL_BUILD_CA_BUNDLE"}
HOST_PORT_VARIABLE = re.compile(r"ZOPTAL_[A-Z_]+_HOST_PORT")
# "127.0.0.1:${ZOPTAL_<NAME>_HOST_PORT:-<default>}:<container port>"
PUBLISHED = re.compile(r"127\.0\.0\.1:\$\{(ZOPTAL_[A-Z_]+_HOST_PORT):-(\d+)\}:(\d+)")
# What a developer runs beside the stack: `make run` (gRPC, metrics, JWKS, its SMTP sink) and the
# PostgreSQL and Redis that `make test` uses.
DEVELOPER_PORTS = (
    {grpc for grpc, _, _ in SERVICES.values()}
    | {metrics for _, metrics, _ in SERVICES.values()}
    | {8080, SMTP_SINK_PORT, 5432, 6379}
)
OUR_IMAGE = re.compile(r"zoptal/([a-z-]+):\$\{ZOPTAL_TAG:-dev\}")


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
    """The containers that run an image of our Dockerfile."""
    return {name: s for name, s in compose["services"].items() if OUR_IMAGE.fullmatch(s["image"])}


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
    """`docker compose up --wait` needs a health state for every service that keeps running.
    A service in a profile (`loadgen`, profile `load`) is not started by `up`: it is run on
    demand (`compose --profile load run`) and exits."""
    finished = one_shots(compose)
    missing = [
        name
        for name, service in compose["services"].items()
        if name not in finished
        and not service.get("profiles")
        and not service.get("healthcheck", {}).get("test")
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
    assert env["DATABASE_URL"] == f"postgresql+asyncpg://zoptal@postgres:5432/{svc}"
    for peer in SERVICES:
        assert env[f"{peer.upper()}_ADDR"] == f"{peer}:{MTLS_PORTS[peer]}"
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
    worker = compose["services"][WORKER]["environment"]
    assert f"{WORKER}:{worker['WORKER_METRICS_PORT']}" in targets


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


def volume_names(service: dict[str, Any]) -> dict[str, str]:
    """Named volume -> mount path (bind mounts, whose source is a path, are left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if not source.startswith((".", "/")):
            mounts[source] = target
    return mounts


def test_no_secret_value_is_written_in_the_file(compose: dict[str, Any]) -> None:
    """No password, key or token in the text, and no ${VAR:-default} that could carry one."""
    text = COMPOSE_FILE.read_text()
    used = {
        name for name in re.findall(r"\$\{(\w+)", text) if not HOST_PORT_VARIABLE.fullmatch(name)
    }
    assert used <= ALLOWED_INTERPOLATIONS, f"substitutions beyond {ALLOWED_INTERPOLATIONS}: {used}"
    assert "SERVICE_TOKEN_SECRET" not in text
    assert "PRIVATE KEY" not in text
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        assert "POSTGRES_PASSWORD" not in env, name
        for key, value in env.items():
            if key.endswith("_URL"):
                # scheme://user@host: a password would sit between a ':' and the '@'
                assert not re.match(r"\w[\w+.-]*://[^/@]*:[^/@]*@", str(value)), f"{name}.{key}"
            assert not re.search(r"SECRET|PASSWORD$|TOKEN", key), f"{name}.{key}"


def test_every_secret_lives_in_a_generated_volume(compose: dict[str, Any]) -> None:
    """The password files and the identity files point into volumes a one-shot writes."""
    services = compose["services"]
    writers = {
        "db-password": "db-password",
        "zoptal-ca": "pki-init",
        **{f"{svc}-identity": "pki-init" for svc in SERVICES},
    }
    for volume, writer in writers.items():
        assert volume in compose["volumes"], volume
        assert volume in volume_names(services[writer]), f"{writer} does not write {volume}"
    postgres = services["postgres"]
    password_dir = volume_names(postgres)["db-password"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == f"{password_dir}/password"
    for name, service in zoptal_services(compose).items():
        env = service.get("environment", {})
        if "DATABASE_URL" in env:
            mounted = volume_names(service).get("db-password")
            assert env["DATABASE_PASSWORD_FILE"] == f"{mounted}/password", name


def test_only_the_ca_init_container_sees_the_ca_key(compose: dict[str, Any]) -> None:
    """zoptal-ca (ca.key) is mounted by pki-init alone."""
    holders = [n for n, s in compose["services"].items() if "zoptal-ca" in volume_names(s)]
    assert holders == ["pki-init"]


def test_each_service_mounts_only_its_own_identity(compose: dict[str, Any]) -> None:
    """<svc>-identity is mounted read-only by <svc> alone among the long-running containers; the
    worker has none; its TLS files and credential are read from that mount."""
    finished = one_shots(compose)
    for name, service in compose["services"].items():
        if name in finished:
            continue
        identities = {v for v in volume_names(service) if v.endswith("-identity")}
        expected = {f"{name}-identity"} if name in SERVICES else set()
        assert identities == expected, name
    for svc in SERVICES:
        service = compose["services"][svc]
        assert f"{svc}-identity:{IDENTITY_MOUNT}:ro" in service["volumes"]
        env = service["environment"]
        for variable in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"):
            assert env[variable].startswith(f"{IDENTITY_MOUNT}/tls/"), f"{svc}.{variable}"
        if svc in CREDENTIAL_HOLDERS:
            assert env["SERVICE_CREDENTIALS_FILE"] == f"{IDENTITY_MOUNT}/credentials.json"
        else:
            assert "SERVICE_CREDENTIALS_FILE" not in env, svc
    assert "SERVICE_CREDENTIALS_FILE" not in compose["services"][WORKER]["environment"]


def test_init_containers_write_every_identity(compose: dict[str, Any]) -> None:
    """pki-init issues a certificate into each <svc>-identity; auth-service-identity runs the
    contract's `service-identity ensure` over the four credential holders' volumes, with Auth's
    database settings, after Auth's migration."""
    services = compose["services"]
    pki = services["pki-init"]
    script = pki["command"][0]
    assert "python -m meshcore.pki ensure-ca --dir /var/lib/zoptal/ca" in script
    assert "python -m meshcore.pki ensure --ca-dir /var/lib/zoptal/ca" in script
    for svc in SERVICES:
        assert volume_names(pki)[f"{svc}-identity"] == f"/var/lib/zoptal/identities/{svc}"
        assert svc in script.split("for svc in", 1)[1].split(";", 1)[0], svc

    ensure = services["auth-service-identity"]
    assert ensure["image"] == services["auth"]["image"]
    command = ensure["command"]
    assert command[:4] == [
        "service-identity",
        "ensure",
        "--credentials-dir",
        "/var/lib/zoptal/identities",
    ]
    assert set(command[4:]) == set(CREDENTIAL_HOLDERS)
    assert {v for v in volume_names(ensure) if v.endswith("-identity")} == {
        f"{svc}-identity" for svc in CREDENTIAL_HOLDERS
    }
    for svc in CREDENTIAL_HOLDERS:
        assert volume_names(ensure)[f"{svc}-identity"] == f"/var/lib/zoptal/identities/{svc}"
    assert ensure["environment"]["DATABASE_URL"] == services["auth"]["environment"]["DATABASE_URL"]
    assert ensure["depends_on"]["auth-migrate"]["condition"] == "service_completed_successfully"


def test_init_order_is_enforced_by_depends_on(compose: dict[str, Any]) -> None:
    """PostgreSQL after its password; every service after its certificate; callers after their
    credential is registered; Auth after its signing key."""
    services = compose["services"]
    done = "service_completed_successfully"
    assert services["postgres"]["depends_on"]["db-password"]["condition"] == done
    for svc in SERVICES:
        assert services[svc]["depends_on"]["pki-init"]["condition"] == done, svc
        if svc in CREDENTIAL_HOLDERS:
            assert services[svc]["depends_on"]["auth-service-identity"]["condition"] == done
    assert services["auth"]["depends_on"]["auth-keygen"]["condition"] == done


def test_peers_are_called_on_mtls_ports_that_are_not_published(compose: dict[str, Any]) -> None:
    """Every <PEER>_ADDR names the peer's MTLS_PORT; that port is never published, and the
    plaintext ports are published on 127.0.0.1 only."""
    services = compose["services"]
    for svc, port in MTLS_PORTS.items():
        assert services[svc]["environment"]["MTLS_PORT"] == str(port)
    for name, service in zoptal_services(compose).items():
        if service.get("profiles"):
            continue  # the load generator is a client from outside: no certificate, GRPC_PORT
        for peer, port in MTLS_PORTS.items():
            address = service.get("environment", {}).get(f"{peer.upper()}_ADDR")
            assert address in (None, f"{peer}:{port}"), f"{name}: {address}"
    for name, service in compose["services"].items():
        for published in service.get("ports", []):
            host, _, container = published.rpartition(":")
            assert host.startswith("127.0.0.1:"), f"{name} publishes {published} beyond localhost"
            assert int(container) not in MTLS_PORTS.values(), f"{name} publishes its mTLS port"


def target_of(image: str) -> str:
    """zoptal/<target>:${ZOPTAL_TAG:-dev} -> <target>."""
    match = OUR_IMAGE.fullmatch(image)
    assert match, image
    return match[1]


def dockerfile_targets() -> set[str]:
    text = (REPO / "Dockerfile").read_text()
    return set(re.findall(r"^FROM runtime AS ([a-z-]+)$", text, re.M))


def test_each_image_is_built_once_and_never_pulled(compose: dict[str, Any]) -> None:
    """One service builds each Dockerfile target (`pull_policy: build`: built, never pulled from
    whoever published that name); every other user of the image has no build of its own
    (`pull_policy: never`), so a build makes each image once and leaves no dangling copies."""
    builders: dict[str, list[str]] = {}
    for name, service in zoptal_services(compose).items():
        image = service["image"]
        if "build" in service:
            assert service["pull_policy"] == "build", name
            target = service["build"]["target"]
            assert target_of(image) == target, name
            builders.setdefault(image, []).append(name)
        else:
            assert service["pull_policy"] == "never", name
    assert all(len(names) == 1 for names in builders.values()), builders
    assert {target_of(image) for image in builders} == dockerfile_targets()
    users = {s["image"] for s in zoptal_services(compose).values()}
    assert users == set(builders), "an image no service builds"


def test_every_build_may_get_a_ca_bundle(compose: dict[str, Any]) -> None:
    """The builds take the optional BuildKit secret build_ca; without ZOPTAL_BUILD_CA_BUNDLE it is
    an empty file, which the Dockerfile ignores."""
    assert compose["secrets"]["build_ca"] == {"file": "${ZOPTAL_BUILD_CA_BUNDLE:-/dev/null}"}
    for name, service in zoptal_services(compose).items():
        if "build" in service:
            assert service["build"]["secrets"] == ["build_ca"], name
    assert "/run/secrets/build_ca" in (REPO / "Dockerfile").read_text()


def test_third_party_images_are_pinned_to_a_release(compose: dict[str, Any]) -> None:
    """PostgreSQL, Redis, Jaeger, Prometheus, Mailpit and the Python base: a release tag each
    (major.minor at least), never a floating one."""
    images = [
        s["image"]
        for s in compose["services"].values()
        if not OUR_IMAGE.fullmatch(s["image"]) and not s.get("profiles")
    ]
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert base is not None
    images.append(base[1])
    assert len(images) == 6
    # Optional services (a profile: Grafana) are pinned too, though `up` does not start them.
    images += [
        s["image"]
        for s in compose["services"].values()
        if s.get("profiles") and not OUR_IMAGE.fullmatch(s["image"])
    ]
    for image in images:
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+(\.\d+)?(-[\w.-]+)?", image), image


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def test_health_checks_work_on_engine_20_10_and_keep_up_wait_quick(
    compose: dict[str, Any],
) -> None:
    """No `start_interval` (Compose refuses it below Engine 25), so a check runs every `interval`
    from the start: at most 5 s for every service another one waits on, and a start period no
    failed check during start-up can outlast."""
    waited_on = {
        dependency
        for service in compose["services"].values()
        for dependency, how in service.get("depends_on", {}).items()
        if how["condition"] == "service_healthy"
    }
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        if check is None or check.get("disable"):
            continue
        assert "start_interval" not in check, name
        if name in waited_on:
            assert seconds(check["interval"]) <= 5, name
        assert seconds(check["start_period"]) >= 30, name


def test_host_ports_are_movable_and_clear_of_the_developer_setup(compose: dict[str, Any]) -> None:
    """Every published port is 127.0.0.1:${ZOPTAL_<NAME>_HOST_PORT:-default}:port, each with its
    own variable, and no default is a port `make run` or `make test`'s servers use."""
    variables, defaults = [], []
    for name, service in compose["services"].items():
        for published in service.get("ports", []):
            match = PUBLISHED.fullmatch(published)
            assert match, f"{name}: {published}"
            variables.append(match[1])
            defaults.append(int(match[2]))
    assert len(set(variables)) == len(variables), variables
    assert len(set(defaults)) == len(defaults), defaults
    assert not set(defaults) & DEVELOPER_PORTS
