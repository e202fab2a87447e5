"""`docker compose up --build --wait` for real, then a user journey, mTLS evidence and rotation.

Needs a Docker engine with Compose v2 and every image the stack does not build (PostgreSQL, Redis,
Jaeger, Prometheus, Mailpit, and the Dockerfile's Python base) already present: pulled from a
registry, or the stand-ins of scripts/build_standin_images.sh on a machine without one (then
deploy/standins/compose.standins.yml is layered on, as its header says). Without them every test
here is skipped, or fails under CI=true: `.ci/run` prepares all of it (scripts/ci_docker.sh).

The stack runs as its own Compose project (``zoptal-e2e``), from this checkout, and is removed
with its volumes (`down -v`) at the end. Everything is checked from outside, as an operator would:
- the journey over the published plaintext ports: register, log in, create projects up to the free
  plan's limit (Project -> Billing -> Analytics over mTLS), usage in Billing, the refusal past the
  limit, the 80 % and 100 % emails in Mailpit, the project events in Analytics' database;
- inside the compose network (tests/deploy/compose_probe.py in Project's image): Billing's mTLS
  port refuses a client without a certificate, a service token with another service's
  certificate, and a service token on the plaintext port;
- rotation with the commands of docs/deployment.md ("Rotating secrets (compose)") while
  CreateProject calls run: no call fails, Billing serves the re-issued certificate, and the
  rotated credential is the one Auth accepts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.billing.v1 import billing_pb2, billing_pb2_grpc
from zoptal.project.v1 import project_pb2, project_pb2_grpc

from tests.deploy.support import REPO
from tests.requirements import requirement_missing

PROJECT = "zoptal-e2e"
STANDINS_OVERRIDE = "deploy/standins/compose.standins.yml"
PROBE = Path(__file__).with_name("compose_probe.py")
FORGERY_PROBE = Path(__file__).with_name("compose_forgery_probe.py")
PASSWORD = "correct-horse-battery-9"
CALL_TIMEOUT = 15.0
UP_TIMEOUT = 1500
T = TypeVar("T")


# The documented rotation commands (docs/deployment.md, "Rotating secrets (compose)").
def reissue_certificate(service: str) -> list[str]:
    return [
        "run", "--rm", "--entrypoint", "python", "pki-init",
        "-m", "meshcore.pki", "issue", "--ca-dir", "/var/lib/zoptal/ca",
        "--out", f"/var/lib/zoptal/identities/{service}/tls",
        "--service", service, "--dns", service,
    ]  # fmt: skip


def rotate_credential(service: str) -> list[str]:
    return [
        "run", "--rm", "auth-service-identity",
        "service-identity", "rotate", "--credentials-dir", "/var/lib/zoptal/identities", service,
        "--grace-seconds", "600",
    ]  # fmt: skip


def _run(args: list[str], *, timeout: float, env: dict[str, str] | None = None, **kw: Any) -> Any:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env=env, **kw
    )


def _third_party_images() -> list[str]:
    """The images compose and the Dockerfile name but do not build."""
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    images = [s["image"] for s in compose["services"].values() if "image" in s and "build" not in s]
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("ARG PYTHON_IMAGE="):
            images.append(line.split("=", 1)[1].strip())
    return images


def _not_ready() -> tuple[str | None, bool]:
    """(why the stack cannot run here, or None; whether the images are the stand-ins)."""
    if shutil.which("docker") is None:
        return "no docker client", False
    try:
        if _run(["docker", "info"], timeout=30).returncode != 0:
            return "no Docker engine answers `docker info`", False
        if _run(["docker", "compose", "version"], timeout=30).returncode != 0:
            return "no Compose v2 (`docker compose version` fails)", False
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker does not answer: {error}", False
    standins = False
    for image in _third_party_images():
        inspected = _run(
            [
                "docker",
                "image",
                "inspect",
                "-f",
                '{{index .Config.Labels "org.zoptal.standin"}}',
                image,
            ],
            timeout=30,
        )
        if inspected.returncode != 0:
            return (
                f"image {image} is not present (pull it, or on a machine without a registry run "
                "scripts/build_standin_images.sh)",
                False,
            )
        standins = standins or bool(inspected.stdout.strip())
    return None, standins


@dataclass
class Stack:
    env: dict[str, str]
    ports: dict[str, int]
    up_seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 300, stdin: str | None = None) -> Any:
        return _run(
            ["docker", "compose", "-p", PROJECT, *args],
            timeout=timeout,
            env=self.env,
            cwd=REPO,
            input=stdin,
        )

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def probe(self, user_id: str) -> dict[str, str]:
        """tests/deploy/compose_probe.py inside Project's image, with Analytics' identity too."""
        done = self.compose(
            "run", "--rm", "-T", "--no-deps", "--entrypoint", "python",
            "-v", f"{PROJECT}_analytics-identity:/other-identity:ro",
            "project", "-", user_id,
            stdin=PROBE.read_text(),
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def psql(self, database: str, sql: str) -> str:
        done = self.compose(
            "exec", "-T", "postgres", "psql", "-U", "zoptal", "-d", database, "-tAc", sql
        )
        assert done.returncode == 0, done.stderr
        return str(done.stdout.strip())


def _published_ports(env: dict[str, str]) -> dict[str, int]:
    """Service -> its first published host port, from the merged configuration."""
    done = _run(
        ["docker", "compose", "-p", PROJECT, "config", "--format", "json"],
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    ports = {}
    for name, service in json.loads(done.stdout)["services"].items():
        for port in service.get("ports") or []:
            ports.setdefault(name, int(port["published"]))
            ports[f"{name}:{port['target']}"] = int(port["published"])
    return ports


def _busy(ports: dict[str, int]) -> list[int]:
    taken = []
    for port in sorted(set(ports.values())):
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(port)
    return taken


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    reason, standins = _not_ready()
    if reason is not None:
        # .ci/run prepares all of it (scripts/ci_docker.sh): under CI=true a gap fails the run.
        requirement_missing(f"docker compose stack not available: {reason}")
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    files = ["docker-compose.yml"] + ([STANDINS_OVERRIDE] if standins else [])
    env["COMPOSE_FILE"] = os.pathsep.join(files)
    ports = _published_ports(env)
    busy = _busy(ports)
    if busy:
        requirement_missing(f"host ports already in use (another stack running?): {busy}")
    stack = Stack(env=env, ports=ports, up_seconds=0.0)
    started = time.monotonic()
    up = stack.compose("up", "--build", "--wait", timeout=UP_TIMEOUT)
    stack.up_seconds = time.monotonic() - started
    try:
        if up.returncode != 0:
            state = stack.compose("ps", "-a").stdout
            logs = stack.compose("logs", "--no-color", "--tail", "40").stdout
            failed = f"{up.stderr[-4000:]}\n{state}\n{logs[-8000:]}"
            pytest.fail(f"`docker compose up --build --wait` failed:\n{failed}")
        print(f"\ncompose up --build --wait: {stack.up_seconds:.0f} s")
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", timeout=300)


# --- the journey ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Clients:
    auth: auth_pb2_grpc.AuthServiceStub
    project: project_pb2_grpc.ProjectServiceStub
    billing: billing_pb2_grpc.BillingServiceStub


@pytest.fixture(scope="module")
def clients(stack: Stack) -> Iterator[Clients]:
    channels = [grpc.insecure_channel(stack.address(s)) for s in ("auth", "project", "billing")]
    try:
        yield Clients(
            auth_pb2_grpc.AuthServiceStub(channels[0]),
            project_pb2_grpc.ProjectServiceStub(channels[1]),
            billing_pb2_grpc.BillingServiceStub(channels[2]),
        )
    finally:
        for channel in channels:
            channel.close()


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    metadata: tuple[tuple[str, str], ...] = field(repr=False)  # the access token


def _new_user(clients: Clients, name: str) -> User:
    email = f"{name}-{uuid.uuid4().hex[:10]}@example.com"
    clients.auth.RegisterUser(
        auth_pb2.RegisterUserRequest(email=email, password=PASSWORD, display_name="Ada"),
        timeout=CALL_TIMEOUT,
    )
    login = clients.auth.Login(
        auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=CALL_TIMEOUT
    )
    return User(login.user.id, email, (("authorization", f"Bearer {login.access_token}"),))


def _create_project(clients: Clients, user: User, name: str) -> project_pb2.Project:
    request = project_pb2.CreateProjectRequest(name=name, request_id=uuid.uuid4().hex)
    reply = clients.project.CreateProject(request, metadata=user.metadata, timeout=CALL_TIMEOUT)
    return reply.project


def _poll(
    probe: Callable[[], T], done: Callable[[T], bool], *, what: str, timeout: float = 60
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f} s; last: {result!r}")
        time.sleep(0.5)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 (127.0.0.1 only)
        return json.loads(reply.read())


def _projects_used(clients: Clients, user: User) -> int:
    reply = clients.billing.GetUserSubscription(
        billing_pb2.GetUserSubscriptionRequest(user_id=user.user_id),
        metadata=user.metadata,
        timeout=CALL_TIMEOUT,
    )
    return sum(u.used for u in reply.usage if u.metric == billing_pb2.METRIC_PROJECTS)


def test_journey_over_the_published_ports(stack: Stack, clients: Clients) -> None:
    user = _new_user(clients, "compose-journey")
    plans = clients.billing.GetSubscriptionPlans(
        billing_pb2.GetSubscriptionPlansRequest(), metadata=user.metadata, timeout=CALL_TIMEOUT
    ).plans
    free = next(plan for plan in plans if plan.id == "free")
    limit = next(i.limit for i in free.limits if i.metric == billing_pb2.METRIC_PROJECTS)
    assert limit >= 1

    # Each CreateProject: Project -> Billing (CheckSubscriptionLimits, RecordUsage) and
    # Project -> Analytics (TrackEvent), over the mTLS ports, with the services' own tokens.
    created = [_create_project(clients, user, f"Project {n}") for n in range(1, limit + 1)]
    assert all(p.owner_id == user.user_id for p in created)
    assert _projects_used(clients, user) == limit
    with pytest.raises(grpc.RpcError) as refused:
        _create_project(clients, user, "One too many")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    # Billing -> Notification (mTLS) -> the Celery worker -> SMTP: the 80 % and 100 % emails.
    mailpit = f"http://{stack.address('mailpit')}/api/v1/search?query=to:{user.email}"
    subjects = _poll(
        lambda: [m["Subject"] for m in _get_json(mailpit)["messages"]],
        lambda found: (
            any("80%" in s for s in found) and any(f"limit of {limit}" in s for s in found)
        ),
        what="the 80 % and 100 % usage emails in Mailpit",
    )
    assert len(subjects) == 2, subjects

    # Analytics stored one project.created event per project (its write buffer flushes later).
    uuid.UUID(user.user_id)  # an id from Auth, safe to quote in SQL
    count_sql = (
        "SELECT count(*) FROM events WHERE name = 'project.created' "  # noqa: S608
        f"AND user_id = '{user.user_id}'"
    )
    _poll(
        lambda: int(stack.psql("analytics", count_sql)),
        lambda n: n == limit,
        what="the project.created events in Analytics' database",
    )

    # The OTLP sink (Jaeger) heard from every service, and Prometheus scrapes every metrics port.
    jaeger = f"http://{stack.address('jaeger')}/api/services"
    _poll(
        lambda: set(_get_json(jaeger)["data"]),
        lambda seen: {"auth", "project", "billing", "notification", "analytics"} <= seen,
        what="traces from every service",
    )
    targets = f"http://{stack.address('prometheus')}/api/v1/targets"
    _poll(
        lambda: {
            t["labels"].get("service"): t["health"]
            for t in _get_json(targets)["data"]["activeTargets"]
        },
        lambda health: all(
            health.get(s) == "up"
            for s in ("auth", "project", "billing", "notification", "analytics")
        ),
        what="every metrics target up in Prometheus",
        timeout=90,
    )


def test_peers_accept_only_mtls_bound_to_the_callers_identity(stack: Stack) -> None:
    found = stack.probe("u_probe")
    assert found["own_cert_and_token"] == "ok", found
    # No client certificate: the TLS handshake is refused, before any gRPC.
    assert found["no_client_cert"] == "UNAVAILABLE", found
    assert found["tls_no_cert"] == "connected, read 0 bytes", found
    assert found["tls_own_cert"].startswith("connected, read "), found
    assert found["tls_own_cert"] != found["tls_no_cert"], found
    # A valid certificate is not enough, nor is a valid token with another service's certificate
    # or on the plaintext port.
    assert found["cert_no_token"] == "UNAUTHENTICATED", found
    assert found["other_cert"] == "UNAUTHENTICATED", found
    assert found["plaintext_token"] == "UNAUTHENTICATED", found


# Each service's mTLS port inside the compose network (its MTLS_PORT).
MTLS_TARGETS = {
    "auth": "auth:5000",
    "project": "project:5001",
    "billing": "billing:5003",
    "notification": "notification:5004",
    "analytics": "analytics:5005",
}


def test_forged_service_tokens_are_refused_over_mtls_by_every_rpc(
    stack: Stack, tmp_path: Path
) -> None:
    """Every secret and key in the repository, HS256 with Auth's public key, a stranger's key with
    Auth's kid, alg none: sent with Project's real client certificate (so the certificate is not
    what refuses them) to every protected RPC of every service, each is UNAUTHENTICATED."""
    from tests.fuzz.catalogue import PROTECTED_RPCS
    from tests.fuzz.forgeries import forgeries_for

    jwks_url = f"http://{stack.address('auth:8080')}/.well-known/jwks.json"
    with urllib.request.urlopen(jwks_url, timeout=10) as reply:
        forged = forgeries_for(json.loads(reply.read()))
    rpcs = PROTECTED_RPCS
    plan = [
        {
            "target": MTLS_TARGETS[rpc.service],
            "path": rpc.full_name,
            "client_streaming": rpc.method.client_streaming,
            "metadata": [list(item) for item in forgery.metadata],
        }
        for forgery, rpc in (
            (forged[i % len(forged)], rpcs[i % len(rpcs)])
            for i in range(max(len(forged), len(rpcs)))
        )
    ]
    plan_file = tmp_path / "forged.json"
    plan_file.write_text(json.dumps(plan))
    plan_file.chmod(0o644)  # read by the image's UID 1000 through the bind mount
    tmp_path.chmod(0o755)
    done = stack.compose(
        "run", "--rm", "-T", "--no-deps", "--entrypoint", "python",
        "-v", f"{tmp_path}:/plan:ro", "project", "-", "/plan/forged.json",
        stdin=FORGERY_PROBE.read_text(),
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(codes) == len(plan) >= len(rpcs)
    wrong = [
        f"{forged[i % len(forged)].label} -> {plan[i]['path']}: {code}"
        for i, code in enumerate(codes)
        if code != "UNAUTHENTICATED"
    ]
    assert not wrong, f"{len(wrong)} forged calls not refused:\n" + "\n".join(wrong[:40])


class CallLoop:
    """CreateProject calls one after another on a thread, counting outcomes, until stopped."""

    def __init__(self, clients: Clients, user: User) -> None:
        self.clients, self.user = clients, user
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                _create_project(self.clients, self.user, f"loop {uuid.uuid4().hex[:8]}")
                self.ok += 1
            except grpc.RpcError as error:
                self.failed.append(f"{error.code().name}: {error.details()}")
            time.sleep(0.05)

    def __enter__(self) -> CallLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=CALL_TIMEOUT + 5)


def _credential(stack: Stack, service: str) -> dict[str, str]:
    """<service>-identity/credentials.json, read in that service's own image."""
    done = stack.compose(
        "run", "--rm", "-T", "--no-deps", "--entrypoint", "cat",
        service, "/var/lib/zoptal/identity/credentials.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    credential: dict[str, str] = json.loads(done.stdout)
    return credential


def test_rotation_with_the_documented_commands_fails_no_call(
    stack: Stack, clients: Clients
) -> None:
    """While CreateProject runs in a loop: re-issue Billing's certificate (the server side of
    Project -> Billing) and Project's (the client side), and rotate Project's credential (the
    caller's). Not one call may fail."""
    user = _new_user(clients, "compose-rotation")
    clients.billing.ChangeSubscription(
        billing_pb2.ChangeSubscriptionRequest(user_id=user.user_id, plan_id="enterprise"),
        metadata=user.metadata,
        timeout=CALL_TIMEOUT,
    )
    before = stack.probe(user.user_id)["billing_serial"]
    old_credential = _credential(stack, "project")

    steps = {
        "reissue billing certificate": reissue_certificate("billing"),
        "reissue project certificate": reissue_certificate("project"),
        "rotate project credential": rotate_credential("project"),
    }
    outputs = {}
    with CallLoop(clients, user) as loop:
        time.sleep(3)
        for step, command in steps.items():
            started = time.monotonic()
            done = stack.compose(*command, timeout=300)
            stack.timings[step] = round(time.monotonic() - started, 1)
            assert done.returncode == 0, f"{step}: {done.stderr}"
            outputs[step] = done.stdout
        time.sleep(10)  # calls keep going on the re-issued certificates and new credential
    print(
        f"\nrotation: {loop.ok} CreateProject calls ok, {len(loop.failed)} failed; {stack.timings}"
    )
    assert loop.failed == [], loop.failed[:5]
    assert loop.ok >= 10
    assert _projects_used(clients, user) == loop.ok

    # Billing serves its re-issued certificate (the serial `issue` printed) on new connections.
    after = stack.probe(user.user_id)["billing_serial"]
    assert after != before
    assert f"(serial {after})" in outputs["reissue billing certificate"]

    # The rotated credential is a new secret for the same account; Auth accepts it, and the old
    # one too for its grace period (the service switches when it next renews its token).
    new_credential = _credential(stack, "project")
    assert new_credential["client_id"] == old_credential["client_id"]
    same_secret = new_credential["client_secret"] == old_credential["client_secret"]
    assert not same_secret  # (compared here, so that no secret reaches a failure message)
    for credential in (new_credential, old_credential):
        clients.auth.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(
                client_id=credential["client_id"], client_secret=credential["client_secret"]
            ),
            timeout=CALL_TIMEOUT,
        )
