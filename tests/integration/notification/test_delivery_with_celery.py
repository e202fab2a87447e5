"""SendEmail through a real Celery worker process to a real SMTP server, on PostgreSQL with
the Redis broker (compose/Kubernetes) and on SQLite with the SQLite broker (embedded)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from zoptal.notification.v1 import notification_pb2 as pb

from tests.smtp import SmtpSink
from tests.support import free_port

from .conftest import (
    SENDER,
    RunningNotification,
    WorkerProcess,
    eventually,
    make_settings,
    running_notification,
    worker_environment,
)

pytestmark = pytest.mark.timeout(120)


def _email(key: str) -> pb.SendEmailRequest:
    return pb.SendEmailRequest(
        to="ada@example.com",
        user_id="user-ada",
        subject="Welcome",
        body_text="Hello Ada",
        idempotency_key=key,
    )


async def _notification(running: RunningNotification, notification_id: str) -> pb.Notification:
    reply = await running.stub.GetNotification(
        pb.GetNotificationRequest(notification_id=notification_id), metadata=SENDER
    )
    return reply.notification


async def _wait_for_status(
    running: RunningNotification,
    notification_id: str,
    status: pb.NotificationStatus.ValueType,
    within: float = 40.0,
) -> pb.Notification:
    async def reached() -> bool:
        return (await _notification(running, notification_id)).status == status

    await eventually(reached, within=within, what=f"status {pb.NotificationStatus.Name(status)}")
    return await _notification(running, notification_id)


@pytest.mark.postgres
@pytest.mark.redis
async def test_an_email_travels_from_send_email_through_the_worker_to_smtp(
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:
    """SendEmail answers QUEUED; the worker delivers over SMTP; history then shows SENT."""
    settings = make_settings(postgres_url, redis_url, tmp_path)
    async with running_notification(settings) as running:
        worker = start_worker(worker_environment(settings, smtp_sink.port))
        reply = await running.stub.SendEmail(_email("welcome-ada"), metadata=SENDER)
        assert reply.status == pb.NOTIFICATION_STATUS_QUEUED
        sent = await _wait_for_status(running, reply.notification_id, pb.NOTIFICATION_STATUS_SENT)
        history = await running.stub.GetNotificationHistory(
            pb.GetNotificationHistoryRequest(user_id="user-ada"), metadata=SENDER
        )
    assert [n.status for n in history.notifications] == [pb.NOTIFICATION_STATUS_SENT]
    assert history.notifications[0].sent_at.seconds > 0
    assert len(smtp_sink.messages) == 1, worker.output()
    assert b"Subject: Welcome" in smtp_sink.messages[0]
    assert sent.provider_message_id.encode() in smtp_sink.messages[0]


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_same_idempotency_key_twice_sends_one_email(
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:
    """Two SendEmail calls with one key: one notification, one message at the SMTP server."""
    settings = make_settings(postgres_url, redis_url, tmp_path)
    async with running_notification(settings) as running:
        start_worker(worker_environment(settings, smtp_sink.port))
        first = await running.stub.SendEmail(_email("once"), metadata=SENDER)
        second = await running.stub.SendEmail(_email("once"), metadata=SENDER)
        assert second.notification_id == first.notification_id
        assert (first.deduplicated, second.deduplicated) == (False, True)
        await _wait_for_status(running, first.notification_id, pb.NOTIFICATION_STATUS_SENT)
        changed = _email("once")
        changed.subject = "Another subject"
        with pytest.raises(grpc.aio.AioRpcError) as conflict:
            await running.stub.SendEmail(changed, metadata=SENDER)
        history = await running.stub.GetNotificationHistory(
            pb.GetNotificationHistoryRequest(user_id="user-ada"), metadata=SENDER
        )
    assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert history.total_count == 1
    assert len(smtp_sink.messages) == 1


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_failing_provider_is_retried_then_failed_with_the_reason(
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:
    """An SMTP server answering 451 every time: three attempts, then FAILED saying so."""
    smtp_sink.reply = "451 4.3.0 mailbox busy"
    settings = make_settings(postgres_url, redis_url, tmp_path, delivery_max_attempts=3)
    async with running_notification(settings) as running:
        start_worker(worker_environment(settings, smtp_sink.port))
        reply = await running.stub.SendEmail(_email("doomed"), metadata=SENDER)
        failed = await _wait_for_status(
            running, reply.notification_id, pb.NOTIFICATION_STATUS_FAILED
        )
    assert failed.attempts == 3
    assert smtp_sink.attempts == 3
    assert "after 3 attempts" in failed.last_error
    assert "451" in failed.last_error
    assert smtp_sink.messages == []


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_worker_killed_mid_delivery_still_delivers_exactly_once(
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:
    """SIGKILL the worker while the SMTP server holds its DATA: after the claim runs out the
    next worker delivers, and the server accepts the message exactly once."""
    smtp_sink.hold = True
    settings = make_settings(postgres_url, redis_url, tmp_path)
    async with running_notification(settings) as running:
        doomed = start_worker(worker_environment(settings, smtp_sink.port))
        reply = await running.stub.SendEmail(_email("survivor"), metadata=SENDER)

        async def held() -> bool:
            return smtp_sink.held.is_set()

        await eventually(held, what="the first delivery to reach DATA")
        doomed.kill()
        smtp_sink.released.set()
        start_worker(worker_environment(settings, smtp_sink.port))
        sent = await _wait_for_status(running, reply.notification_id, pb.NOTIFICATION_STATUS_SENT)
    assert len(smtp_sink.messages) == 1
    assert sent.attempts == 2


async def test_the_embedded_mode_delivers_through_the_sqlite_broker(
    tmp_path: Path,
    smtp_sink: SmtpSink,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:
    """SQLite database and kombu's SQLAlchemy transport: no Redis, no PostgreSQL."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'notification.db'}"
    broker_url = f"sqla+sqlite:///{tmp_path / 'celery-broker.db'}"
    settings = make_settings(database_url, broker_url, tmp_path)
    async with running_notification(settings) as running:
        start_worker(worker_environment(settings, smtp_sink.port))
        reply = await running.stub.SendEmail(_email("embedded"), metadata=SENDER)
        await _wait_for_status(running, reply.notification_id, pb.NOTIFICATION_STATUS_SENT)
    assert len(smtp_sink.messages) == 1


@pytest.mark.postgres
@pytest.mark.redis
async def test_an_email_sent_while_the_broker_is_down_is_delivered_once_it_is_back(
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> None:
    """SendEmail still answers QUEUED with no broker; a restarted server's outbox relay
    enqueues the committed row and the worker delivers it."""
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    without_broker = make_settings(postgres_url, unreachable, tmp_path)
    async with running_notification(without_broker) as running:
        reply = await running.stub.SendEmail(_email("outage"), metadata=SENDER)
        assert reply.status == pb.NOTIFICATION_STATUS_QUEUED
    settings = make_settings(postgres_url, redis_url, tmp_path)
    async with running_notification(settings) as running:
        start_worker(worker_environment(settings, smtp_sink.port))
        sent = await _wait_for_status(running, reply.notification_id, pb.NOTIFICATION_STATUS_SENT)
    assert sent.attempts == 1
    assert len(smtp_sink.messages) == 1
