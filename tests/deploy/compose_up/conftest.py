"""One compose stack for every test in this folder: `docker compose up --build --wait` of
docker-compose.yml as written, as project ``zoptal-e2e``, removed with its volumes at the end.

Needs a Docker engine with Compose v2 and every image the stack does not build; `make
compose-test` (scripts/compose_test.sh) installs and builds all of it, and `make test` leaves this
folder out. Without them every test here is skipped, or fails under CI=true."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.deploy.compose_up.stack import (
    PROJECT,
    Stack,
    busy,
    compose_env,
    not_ready,
    published_ports,
    run,
)
from tests.e2e.journey import Stubs, stubs_at
from tests.requirements import requirement_missing


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    if shutil.which("docker") is None:
        requirement_missing("docker compose stack not available: no docker client")
    reason, standins = not_ready()
    if reason is not None:
        requirement_missing(f"docker compose stack not available: {reason}")
    env = compose_env()
    ports = published_ports(env)
    taken = busy(ports)
    if taken:
        requirement_missing(f"host ports already in use (another stack running?): {taken}")
    stack = Stack(env=env, ports=ports)
    try:
        stack.up_seconds = stack.up("--build")
        print(f"\ncompose up --build --wait: {stack.up_seconds:.0f} s; stand-ins: {standins}")
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", timeout=300)
    left = run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"],
        timeout=30,
    )
    assert left.stdout.split() == [], f"volumes left after down -v: {left.stdout}"


@pytest.fixture(scope="package")
def stubs(stack: Stack) -> Iterator[Stubs]:
    """Stubs on the five services' published (plaintext) ports."""
    services = ("auth", "project", "billing", "notification", "analytics")
    with stubs_at(*(stack.address(service) for service in services)) as opened:
        yield opened
