"""Real pieces for Notification integration tests: an SMTP sink (aiosmtpd), Celery worker
subprocesses, and the Notification gRPC server in-process with its outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from meshcore.migrations import upgrade_database
from zoptal.notification.v1 import notification_pb2_grpc
from zoptal_notification.app import MIGRATIONS_DIR, NotificationApp
from zoptal_notification.settings import NotificationSettings

from tests.mesh import serving
from tests.smtp import SmtpSink, listening
from tests.tokens import MINT, trusting_chain


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with listening(SmtpSink()) as sink:
        yield sink


def worker_environment(
    settings: NotificationSettings, smtp_port: int, **extra: str
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CELERY_", "DATABASE_", "REDIS_", "SMTP_", "DELIVERY_", "OTEL_"))
    }
    env.update(
        DATABASE_URL=settings.database_url,
        CELERY_BROKER_URL=settings.celery_broker_url,
        CELERY_QUEUE=settings.celery_queue,
        DATA_DIR=str(settings.data_dir),
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_port),
        SMTP_TIMEOUT_SECONDS=str(settings.smtp_timeout_seconds),
        WEBHOOK_TIMEOUT_SECONDS=str(settings.webhook_timeout_seconds),
        DELIVERY_MAX_ATTEMPTS=str(settings.delivery_max_attempts),
        RETRY_BACKOFF_SECONDS=str(settings.retry_backoff_seconds),
        RETRY_BACKOFF_MAX_SECONDS=str(settings.retry_backoff_max_seconds),
        DELIVERY_LEASE_SECONDS=str(settings.delivery_lease_seconds),
        OUTBOX_REDISPATCH_AFTER_SECONDS=str(settings.outbox_redispatch_after_seconds),
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker: no goodbye to anyone."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), as an orchestrator would do it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], WorkerProcess]]:
    """Start ``celery -A zoptal_notification.worker worker`` as its own process group."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        argv = [
            sys.executable, "-m", "celery", "-A", "zoptal_notification.worker", "worker",
            "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
        ]  # fmt: skip
        with log.open("wb") as sink:
            process = subprocess.Popen(
                argv, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = WorkerProcess(process, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


SENDER = MINT.as_service("billing", "notification:send", "notification:read")


@dataclass
class RunningNotification:
    stub: notification_pb2_grpc.NotificationServiceAsyncStub
    app: NotificationApp
    settings: NotificationSettings


@contextlib.asynccontextmanager
async def running_notification(
    settings: NotificationSettings,
) -> AsyncIterator[RunningNotification]:
    """Migrate, then serve NotificationService over a real channel with the outbox relay on."""
    await upgrade_database(settings.database_url, MIGRATIONS_DIR)
    app = NotificationApp(settings)
    async with serving(app, trusting_chain(settings)) as served:
        yield RunningNotification(
            notification_pb2_grpc.NotificationServiceStub(served.channel), app, settings
        )


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, within: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``probe`` until true: the worker runs in another process on its own schedule."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")


def make_settings(
    database_url: str, broker_url: str, data_dir: Path, **overrides: Any
) -> NotificationSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "celery_broker_url": broker_url,
        "data_dir": data_dir,
        "smtp_timeout_seconds": 2.0,
        "webhook_timeout_seconds": 1.0,
        "delivery_lease_seconds": 4.0,
        "delivery_max_attempts": 3,
        "retry_backoff_seconds": 0.2,
        "retry_backoff_max_seconds": 1.0,
        "outbox_relay_interval_seconds": 0.3,
        "outbox_dispatch_grace_seconds": 1.0,
        "outbox_redispatch_after_seconds": 30.0,
        "rate_limit_max_requests": 100_000,
        "metrics_port": 0,
        # A queue of its own per test: a worker of another test run on the same Redis (another
        # checkout's, at the same time) must not take this test's deliveries.
        "celery_queue": f"notifications-test-{uuid.uuid4().hex[:12]}",
    }
    values.update(overrides)
    return NotificationSettings(**values)
