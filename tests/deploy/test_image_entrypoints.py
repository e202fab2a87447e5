"""The image's entry points, run from the image's venv as the container runs them.

For each service: `python -m zoptal_<svc> migrate` against a fresh PostgreSQL database, then
`python -m zoptal_<svc>` in production mode until the HEALTHCHECK command
(`python -m meshcore.health_probe`) says SERVING, then SIGTERM, which must end it cleanly within
the compose stop grace period. Nothing comes from the source tree: the working directory is empty.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from zoptal.clients.service_identity import ServiceCredential

from tests.deploy.support import REPO, SERVICES
from tests.support import free_port

STOP_GRACE_SECONDS = 40  # docker-compose.yml stop_grace_period
START_SECONDS = 60


def container_env(tmp_path: Path, svc: str, database_url: str, redis_url: str) -> dict[str, str]:
    """What the image and compose set, with local PostgreSQL/Redis and free ports."""
    home = tmp_path / "tmp"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "TMPDIR": str(home),
        "DATA_DIR": str(home / "data"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "ZOPTAL_ENV": "production",
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MESH_MODE": "standalone",
        "AUTH_JWKS_URL": f"http://127.0.0.1:{free_port()}/.well-known/jwks.json",
    }
    for peer in SERVICES:
        env[f"{peer.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    if svc != "auth":
        # Its own credential, as the identity init container writes it (no Auth runs here, so
        # the token fetch just retries: serving does not wait for it).
        credential = ServiceCredential(
            svc, "sa_" + secrets.token_hex(12), secrets.token_urlsafe(32)
        )
        credential.write(tmp_path / "identity" / "credentials.json")
        env["SERVICE_CREDENTIALS_FILE"] = str(tmp_path / "identity" / "credentials.json")
    if svc == "auth":
        env["JWT_SIGNING_KEY_DIR"] = str(tmp_path / "keys")
        env["AUTH_HTTP_PORT"] = str(free_port())
    if svc == "notification":
        env["CELERY_BROKER_URL"] = redis_url
    return env


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (a local http URL)
        body: bytes = reply.read()
        return body.decode()


def wait_until_serving(python: Path, env: dict[str, str], server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_SECONDS
    probe = [str(python), "-m", "meshcore.health_probe", "--quiet", "--timeout", "1"]
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            pytest.fail(f"the server exited with {server.returncode}:\n{output[-3000:]}")
        done = subprocess.run(
            [*probe, "--addr", f"127.0.0.1:{env['GRPC_PORT']}"], env=env, timeout=30, check=False
        )
        if done.returncode == 0:
            return
        time.sleep(0.5)
    pytest.fail(f"not SERVING within {START_SECONDS} s")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("svc", SERVICES)
def test_entry_point_migrates_serves_and_stops_on_sigterm(
    runtime_venv: Path, postgres_url: str, redis_url: str, tmp_path: Path, svc: str
) -> None:
    """migrate exits 0; serve reaches SERVING on the health probe; SIGTERM ends it with 0."""
    if not (REPO / "services" / svc / "src" / f"zoptal_{svc}" / "__main__.py").exists():
        pytest.skip(f"zoptal_{svc}/__main__.py is not written yet")
    python = runtime_venv / "bin" / "python"
    env = container_env(tmp_path, svc, postgres_url, redis_url)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    if svc == "auth":
        subprocess.run(
            [str(python), "-m", "zoptal_auth", "generate-key", env["JWT_SIGNING_KEY_DIR"]],
            env=env,
            cwd=workdir,
            capture_output=True,
            timeout=60,
            check=True,
        )
    migrate = subprocess.run(
        [str(python), "-m", f"zoptal_{svc}", "migrate"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    server = subprocess.Popen(
        [str(python), "-m", f"zoptal_{svc}"],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_serving(python, env, server)
        # The per-service name compose's health check and the readiness probe ask for.
        service_name = f"zoptal.{svc}.v1.{SERVICES[svc][2]}"
        named_check = subprocess.run(
            [
                str(python),
                "-m",
                "meshcore.health_probe",
                "--addr",
                f"127.0.0.1:{env['GRPC_PORT']}",
                "--service",
                service_name,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert named_check.returncode == 0, named_check.stderr
        liveness = subprocess.run(
            [
                str(python),
                "-m",
                "meshcore.health_probe",
                "--addr",
                f"127.0.0.1:{env['GRPC_PORT']}",
                "--service",
                "liveness",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert liveness.returncode == 0, f"the liveness probe's name: {liveness.stderr}"
        # What Prometheus scrapes, and (Auth) what RequestAuthentication and RemoteJwks fetch.
        assert "# TYPE" in http_get(f"http://127.0.0.1:{env['METRICS_PORT']}/metrics")
        if svc == "auth":
            jwks = json.loads(
                http_get(f"http://127.0.0.1:{env['AUTH_HTTP_PORT']}/.well-known/jwks.json")
            )
            assert jwks["keys"]
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=STOP_GRACE_SECONDS)
        assert server.returncode == 0, output[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


@pytest.mark.postgres
@pytest.mark.redis
def test_worker_entry_point_passes_the_compose_health_check(
    runtime_venv: Path, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The worker target's command starts Celery with the image's metrics settings; compose's
    health check (celery inspect ping) sees it; the worker serves /metrics; SIGTERM (Celery's
    warm shutdown) ends it with 0."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    health = compose["services"]["notification-worker"]["healthcheck"]["test"]
    assert health[0] == "CMD-SHELL"
    check = health[1].replace("$$", "$")
    env = container_env(tmp_path, "notification", postgres_url, redis_url)
    env["PATH"] = f"{runtime_venv / 'bin'}:{env['PATH']}"
    env["METRICS_PORT"] = "0"
    # The image's ENV (Dockerfile, target notification-worker), on a free port.
    env["WORKER_METRICS_PORT"] = str(free_port())
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    python = runtime_venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "zoptal_notification", "migrate"],
        env=env,
        cwd=workdir,
        capture_output=True,
        timeout=120,
        check=True,
    )
    worker = subprocess.Popen(
        [
            "celery",
            "-A",
            "zoptal_notification.worker",
            "worker",
            "--loglevel=INFO",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if worker.poll() is not None:
                output = worker.stdout.read() if worker.stdout else ""
                pytest.fail(f"the worker exited with {worker.returncode}:\n{output[-3000:]}")
            done = subprocess.run(
                ["sh", "-c", check],
                env=env,
                cwd=workdir,
                capture_output=True,
                timeout=60,
                check=False,
            )
            if done.returncode == 0:
                break
            assert time.monotonic() < deadline, f"health check never passed: {done.stdout!r}"
            time.sleep(1)
        # It answers with the process's own series; nothing delivered yet, nothing counted.
        metrics = http_get(f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}/metrics")
        assert "\nprocess_resident_memory_bytes " in metrics
        assert "# TYPE zoptal_notification_deliveries_total counter" in metrics
        assert "zoptal_notification_deliveries_total{" not in metrics
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, output[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
