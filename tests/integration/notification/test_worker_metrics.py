"""The Celery worker's /metrics (WORKER_METRICS_PORT): the outcomes of the deliveries its thread
pool runs, and its process's own series."""

from __future__ import annotations

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
    DELIVERY_MAX_ATTEMPTS=2); the process's resident memory is served alongside."""
    port = free_port()
    settings = make_settings(postgres_url, redis_url, tmp_path, delivery_max_attempts=2)
    email = {"outcome": "sent", "channel": "email"}
    async with running_notification(settings) as running:
        worker = start_worker(
            worker_environment(settings, smtp_sink.port, WORKER_METRICS_PORT=str(port))
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
    assert _value(samples, "process_resident_memory_bytes") > 0, worker.output()
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
