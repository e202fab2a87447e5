"""The Celery worker SIGKILLed, or SIGTERMed, while an SMTP delivery is in progress.

Each test queues a batch of emails, holds the first one's DATA at a real SMTP server (aiosmtpd),
acts on the worker meanwhile, and counts what the server took once every email is SENT.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from zoptal.notification.v1 import notification_pb2 as pb
from zoptal_notification.providers.smtp import message_id_for

from tests.faults.cluster import Cluster
from tests.faults.conftest import HoldEnding, SelectiveSmtpSink
from tests.faults.journey import Clients
from tests.faults.probes import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(150)]

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.MULTILINE | re.IGNORECASE)


async def _queue_held_batch(
    clients: Clients, smtp_sink: SelectiveSmtpSink, label: str, count: int, then: HoldEnding
) -> tuple[list[str], list[str]]:
    """Queue ``count`` emails, the first to be held at DATA and then ended as ``then``;
    return their recipients and notification ids once the worker is inside that DATA."""
    tag = uuid.uuid4().hex[:8]
    recipients = [f"{label}-{tag}-{index}@example.com" for index in range(count)]
    smtp_sink.arm(recipients[0], then=then)
    ids: list[str] = []
    for index, recipient in enumerate(recipients):
        reply = await clients.notification.send_email(
            recipient,
            f"Delivery {tag}",
            "exactly once, please",
            idempotency_key=f"{tag}-{index}",
            metadata=clients.operator,
        )
        ids.append(reply.notification_id)
    assert await asyncio.to_thread(smtp_sink.held.wait, 60), "the worker never reached DATA"
    return recipients, ids


async def _wait_all_sent(clients: Clients, ids: list[str]) -> None:
    async def all_sent() -> bool:
        for notification_id in ids:
            reply = await clients.notification.get_notification(
                notification_id, metadata=clients.operator
            )
            if reply.notification.status != pb.NOTIFICATION_STATUS_SENT:
                return False
        return True

    await eventually(all_sent, within=90, what="every email to be SENT", every=0.5)


def _taken(smtp_sink: SelectiveSmtpSink, recipient: str) -> list[bytes]:
    """The messages the SMTP server took for ``recipient``."""
    return [message for message in smtp_sink.messages if recipient.encode() in message]


def _message_id(message: bytes) -> bytes:
    found = MESSAGE_ID.search(message)
    assert found is not None, "a delivered email without a Message-ID"
    return found.group(1)


async def _attempts(clients: Clients, notification_id: str) -> int:
    reply = await clients.notification.get_notification(notification_id, metadata=clients.operator)
    return reply.notification.attempts


async def test_worker_killed_mid_delivery_delivers_every_email_exactly_once(
    clients: Clients, healthy_cluster: Cluster, smtp_sink: SelectiveSmtpSink
) -> None:
    """Twelve emails queued; the SMTP server holds one DATA while the whole worker is
    SIGKILLed; a new worker starts. Every email ends SENT and the SMTP server accepted each
    exactly once (one Message-ID each, no repeats)."""
    recipients, ids = await _queue_held_batch(clients, smtp_sink, "killed", 12, "refused")
    worker = healthy_cluster["worker"]
    worker.kill()
    smtp_sink.released.set()  # the dead worker never hears this 451
    worker.restart()

    await _wait_all_sent(clients, ids)
    assert {r: len(_taken(smtp_sink, r)) for r in recipients} == dict.fromkeys(recipients, 1)
    message_ids = {_message_id(m) for r in recipients for m in _taken(smtp_sink, r)}
    assert len(message_ids) == len(recipients)
    assert await _attempts(clients, ids[0]) == 2  # the killed attempt counted, the second sent


async def test_worker_killed_after_the_server_accepted_resends_under_the_same_message_id(
    clients: Clients, healthy_cluster: Cluster, smtp_sink: SelectiveSmtpSink
) -> None:
    """The window no SMTP client can close: the server has taken the message, the worker dies
    before it hears so (or before it records SENT). Nothing says whether the email went, so the
    next worker sends it again, rather than risk losing it, under the same Message-ID: the
    server holds two copies of that one email and one of every other, and a receiver that
    honours Message-ID (as mail providers do) shows each email exactly once
    (docs/adr/0006-notification-outbox-and-delivery-claims.md)."""
    recipients, ids = await _queue_held_batch(clients, smtp_sink, "unheard", 12, "accepted_unheard")
    worker = healthy_cluster["worker"]
    worker.kill()
    smtp_sink.released.set()  # a 250 nobody is left to hear
    worker.restart()

    await _wait_all_sent(clients, ids)
    interrupted, *others = recipients
    copies = _taken(smtp_sink, interrupted)
    assert len(copies) == 2
    assert {_message_id(copy) for copy in copies} == {message_id_for(ids[0]).encode()}
    assert {r: len(_taken(smtp_sink, r)) for r in others} == dict.fromkeys(others, 1)
    distinct = {_message_id(m) for r in recipients for m in _taken(smtp_sink, r)}
    assert distinct == {message_id_for(notification_id).encode() for notification_id in ids}
    assert await _attempts(clients, ids[0]) == 2


async def test_worker_sigterm_mid_delivery_finishes_it_and_repeats_nothing(
    clients: Clients, healthy_cluster: Cluster, smtp_sink: SelectiveSmtpSink
) -> None:
    """SIGTERM (warm shutdown) while the SMTP server holds one DATA: the worker finishes that
    delivery, exits 0, and after a new worker starts every email is SENT, each accepted once;
    the interrupted one in a single attempt."""
    recipients, ids = await _queue_held_batch(clients, smtp_sink, "drained", 6, "accepted")
    worker = healthy_cluster["worker"]
    worker.terminate()
    await asyncio.sleep(0.5)  # the signal lands while the delivery is still in progress
    smtp_sink.released.set()
    assert await asyncio.to_thread(worker.wait_exit, 30.0) == 0, worker.tail()
    worker.restart()

    await _wait_all_sent(clients, ids)
    assert {r: len(_taken(smtp_sink, r)) for r in recipients} == dict.fromkeys(recipients, 1)
    assert await _attempts(clients, ids[0]) == 1  # finished by the stopping worker, not repeated
