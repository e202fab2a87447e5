"""The Celery worker's /metrics (WORKER_METRICS_PORT): delivery outcomes counted where the
deliveries run reach the main process's endpoint (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from zoptal.notification.v1 import notification_pb2 as pb

from tests.smtp import SmtpSink
from tests.support import free_port

from .conftest import (
    SENDER,
    WorkerProcess,
    eventually,
    make_settings,
    running_notification,
    worker_environment,
)

pytestmark = pytest.mark.timeout(120)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _email(key: str) -> pb.SendEmailRequest:
    return pb.SendEmailRequest(
        to="ada@example.com", user_id="user-ada", subject="Hi", body_text="Hi", idempotency_key=key
    )


def _metrics_env(folder: Path, port: int) -> dict[str, str]:
    return {"WORKER_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(folder)}


@pytest.mark.postgres
@pytest.mark.redis
async def test_outcomes_and_latency_of_deliveries_reach_the_endpoint(
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:
    """One email sent; one refused with 451 twice (one retried attempt, then failed for good,
    DELIVERY_MAX_ATTEMPTS=2); files a previous run left are discarded at start."""
    folder = tmp_path / "worker-metrics"
    folder.mkdir()
    (folder / "counter_99999999.db").write_bytes(b"left by a previous run")
    port = free_port()
    settings = make_settings(postgres_url, redis_url, tmp_path, delivery_max_attempts=2)
    email = {"outcome": "sent", "channel": "email"}
    async with running_notification(settings) as running:
        worker = start_worker(
            worker_environment(settings, smtp_sink.port, **_metrics_env(folder, port))
        )
        await running.stub.SendEmail(_email("metrics-sent"), metadata=SENDER)

        async def counted(outcome: str) -> bool:
            try:
                samples = _scrape(port)
            except OSError:
                return False  # the endpoint starts with the pool
            name = "zoptal_notification_deliveries_total"
            return _value(samples, name, outcome=outcome, channel="email") >= 1

        await eventually(lambda: counted("sent"), within=40, what="a counted delivery")
        smtp_sink.reply = "451 4.3.0 mailbox busy"
        await running.stub.SendEmail(_email("metrics-failed"), metadata=SENDER)
        await eventually(lambda: counted("failed"), within=40, what="a counted failure")
        samples = _scrape(port)
    assert not (folder / "counter_99999999.db").exists(), worker.output()
    deliveries = "zoptal_notification_deliveries_total"
    assert _value(samples, deliveries, **email) == 1
    assert _value(samples, deliveries, outcome="retried", channel="email") == 1
    assert _value(samples, deliveries, outcome="failed", channel="email") == 1
    latency = "zoptal_notification_delivery_latency_seconds"
    assert _value(samples, f"{latency}_count", channel="email") == 1
    assert 0 < _value(samples, f"{latency}_sum", channel="email") < 40
    attempts = "zoptal_notification_delivery_attempt_seconds_count"
    assert _value(samples, attempts, **email) == 1
    assert _value(samples, attempts, outcome="failed", channel="email") == 1


@pytest.mark.redis
def test_metrics_without_the_multiprocess_folder_refuse_to_start(
    redis_url: str, tmp_path: Path
) -> None:
    """Counts kept in one pool process's memory would be invisible: the worker says what is
    missing instead of serving them."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", redis_url, tmp_path)
    env = worker_environment(settings, free_port(), WORKER_METRICS_PORT=str(free_port()))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "zoptal_notification.worker", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "WORKER_METRICS_PORT" in done.stderr
    assert "PROMETHEUS_MULTIPROC_DIR" in done.stderr


def test_importing_the_worker_writes_no_metric_files(tmp_path: Path) -> None:
    """`celery inspect ping` (the health check) imports the worker module with the worker's
    environment every few seconds: it must leave no per-process files for the endpoint to sum."""
    folder = tmp_path / "worker-metrics"
    folder.mkdir()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "WORKER_METRICS_PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    subprocess.run(
        [sys.executable, "-c", "import zoptal_notification.worker"],
        env=env,
        check=True,
        timeout=60,
    )
    assert list(folder.iterdir()) == []
