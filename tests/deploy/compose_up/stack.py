"""The compose stack under test, seen from outside as an operator sees it: `docker compose`
commands against project ``zoptal-e2e``, the published ports, and gRPC clients on them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from zoptal.auth.v1 import auth_pb2
from zoptal.billing.v1 import billing_pb2

from tests.deploy.support import REPO
from tests.e2e.journey import CALL_TIMEOUT, PASSWORD, Stubs, User, poll

PROJECT = "zoptal-e2e"
COMPOSE_FILE = "docker-compose.yml"
PROBE = Path(__file__).with_name("probe.py")
UP_TIMEOUT = 280  # under pytest's per-test timeout, which includes the fixture's `up`
T = TypeVar("T")


def run(args: list[str], *, timeout: float, env: dict[str, str] | None = None, **kw: Any) -> Any:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env=env, **kw
    )


def third_party_images() -> list[str]:
    """The images compose and the Dockerfile use but do not build, as
    scripts/build_standin_images.sh reads them from those files."""
    listed = run([str(REPO / "scripts" / "build_standin_images.sh"), "--list"], timeout=30)
    assert listed.returncode == 0, listed.stderr
    return [line.split()[1] for line in listed.stdout.splitlines()]


def not_ready() -> tuple[str | None, list[str]]:
    """(why the stack cannot run here, or None; the images present that are stand-ins)."""
    try:
        if run(["docker", "info"], timeout=30).returncode != 0:
            return "no Docker engine answers `docker info`", []
        if run(["docker", "compose", "version"], timeout=30).returncode != 0:
            return "no Compose v2 (`docker compose version` fails)", []
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker does not answer: {error}", []
    standins = []
    for image in third_party_images():
        label = '{{index .Config.Labels "org.zoptal.standin"}}'
        inspected = run(["docker", "image", "inspect", "-f", label, image], timeout=30)
        if inspected.returncode != 0:
            return f"image {image} is not present (scripts/third_party_images.sh gets it)", []
        if inspected.stdout.strip():
            standins.append(image)
    return None, standins


def published_ports(env: dict[str, str]) -> dict[str, int]:
    """Service -> its first published host port, and "service:container port" -> host port,
    from the configuration as Compose resolves it (the ZOPTAL_*_HOST_PORT variables applied)."""
    done = run(
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


def busy(ports: dict[str, int]) -> list[int]:
    taken = []
    for port in sorted(set(ports.values())):
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(port)
    return taken


def compose_env() -> dict[str, str]:
    # Only docker-compose.yml, as written: not whatever COMPOSE_FILE the caller has exported.
    return {**os.environ, "DOCKER_BUILDKIT": "1", "COMPOSE_FILE": COMPOSE_FILE}


@dataclass
class Stack:
    env: dict[str, str] = field(repr=False)  # the whole environment: kept out of failure reports
    ports: dict[str, int]
    up_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 300, stdin: str | None = None) -> Any:
        return run(
            ["docker", "compose", "-p", PROJECT, *args],
            timeout=timeout,
            env=self.env,
            cwd=REPO,
            input=stdin,
        )

    def up(self, *args: str) -> float:
        """`docker compose up --wait ARGS`; fails the test with the stack's state and logs."""
        started = time.monotonic()
        done = self.compose("up", "--wait", *args, timeout=UP_TIMEOUT)
        if done.returncode != 0:
            state = self.compose("ps", "-a").stdout
            logs = self.compose("logs", "--no-color", "--tail", "40").stdout
            raise AssertionError(
                f"`docker compose up --wait {' '.join(args)}` failed:\n"
                f"{done.stderr[-4000:]}\n{state}\n{logs[-8000:]}"
            )
        return time.monotonic() - started

    def run_in(
        self,
        service: str,
        command: list[str],
        *options: str,
        timeout: float = 120,
        stdin: str | None = None,
    ) -> Any:
        """`docker compose run` of ``command`` in a one-off container of ``service``, with the
        image the stack runs: `--pull never`, as a building service's `pull_policy: build` would
        rebuild it first (and print the build into the command's output)."""
        return self.compose(
            "run", "--rm", "-T", "--no-deps", "--pull", "never", *options, service, *command,
            timeout=timeout, stdin=stdin,
        )  # fmt: skip

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def container(self, service: str) -> dict[str, Any]:
        """`docker inspect` of the service's (one) container."""
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        done = run(["docker", "inspect", ids[0]], timeout=30)
        assert done.returncode == 0, done.stderr
        inspected: dict[str, Any] = json.loads(done.stdout)[0]
        return inspected

    def wait_healthy(self, service: str, *, timeout: float = 120) -> dict[str, Any]:
        return poll(
            lambda: self.container(service),
            lambda c: c["State"].get("Health", {}).get("Status") == "healthy",
            what=f"{service} healthy",
            timeout=timeout,
        )

    def probe(self, user_id: str) -> dict[str, str]:
        """probe.py inside Project's image, with Analytics' identity too."""
        done = self.run_in(
            "project", ["-", user_id],
            "--entrypoint", "python", "-v", f"{PROJECT}_analytics-identity:/other-identity:ro",
            stdin=PROBE.read_text(),
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

    def emails_to(self, address: str) -> list[str]:
        """Subjects of the messages Mailpit holds for ``address``."""
        url = f"http://{self.address('mailpit')}/api/v1/search?query=to:{address}"
        return [message["Subject"] for message in get_json(url)["messages"]]


def log_in(stubs: Stubs, email: str) -> User:
    """``email`` logs in again (registered by register_and_login, with its password)."""
    login = stubs.auth.Login(
        auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=CALL_TIMEOUT
    )
    return User(login.user.id, email, login.access_token)


def projects_used(stubs: Stubs, user: User) -> int:
    reply = stubs.billing.GetUserSubscription(
        billing_pb2.GetUserSubscriptionRequest(user_id=user.user_id),
        metadata=user.metadata,
        timeout=CALL_TIMEOUT,
    )
    return sum(u.used for u in reply.usage if u.metric == billing_pb2.METRIC_PROJECTS)


def answers(call: Callable[[], T]) -> Callable[[], T | str]:
    """``call`` for poll(): its result, or the status of the RpcError it raised (a service that
    is coming back may refuse a few calls first)."""

    def attempt() -> T | str:
        try:
            return call()
        except grpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"

    return attempt


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 (127.0.0.1 only)
        return json.loads(reply.read())
