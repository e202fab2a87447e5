"""The image's health command: grpc.health.v1 Check, exit 0 only on SERVING."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from meshcore import health_probe

SERVICE = "zoptal.auth.v1.AuthService"


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None)


def test_serving_server_exits_zero(health_server: tuple[str, health.HealthServicer]) -> None:
    """A SERVING server, whole or by service name, gives exit code 0."""
    addr, _ = health_server
    assert health_probe.main(["--addr", addr, "--quiet"]) == 0
    assert health_probe.main(["--addr", addr, "--service", SERVICE, "--quiet"]) == 0


def test_not_serving_service_exits_one(health_server: tuple[str, health.HealthServicer]) -> None:
    """NOT_SERVING (a draining server) gives exit code 1."""
    addr, servicer = health_server
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert health_probe.main(["--addr", addr, "--service", SERVICE, "--quiet"]) == 1


def test_unknown_service_exits_one(health_server: tuple[str, health.HealthServicer]) -> None:
    """A service name the server does not know (NOT_FOUND) gives exit code 1."""
    addr, _ = health_server
    assert health_probe.main(["--addr", addr, "--service", "nope.v1.Nope", "--quiet"]) == 1


def test_unreachable_server_exits_one() -> None:
    """Nothing listening gives exit code 1 within the timeout, not a hang or a traceback."""
    assert health_probe.main(["--addr", "127.0.0.1:1", "--timeout", "0.5", "--quiet"]) == 1


def test_runs_as_a_module(health_server: tuple[str, health.HealthServicer]) -> None:
    """`python -m meshcore.health_probe` is the command the image HEALTHCHECK runs."""
    addr, _ = health_server
    done = subprocess.run(
        [sys.executable, "-m", "meshcore.health_probe", "--addr", addr],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "SERVING" in done.stdout
