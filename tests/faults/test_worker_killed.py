"""The Celery worker SIGKILLed, or SIGTERMed, while an SMTP delivery is in progress."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from zoptal.notification.v1 import notification_pb2 as pb

from tests.faults.cluster import Cluster
from tests.faults.conftest import SelectiveSmtpSink
from tests.faults.journey import OPERATOR, Clients
from tests.faults.probes import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(150)]

EMAILS = 12
MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.MULTILINE | re.IGNORECASE)


async def test_worker_killed_mid_delivery_delivers_every_email_exactly_once(
    clients: Clients, healthy_cluster: Cluster, smtp_sink: SelectiveSmtpSink
) -> None:
    """Twelve emails queued; the SMTP server holds one DATA while the whole worker (main
    process and pool child) is SIGKILLed; a new worker starts. Every email ends SENT and the
    SMTP server accepted each exactly once (one Message-ID each, no repeats)."""
    tag = uuid.uuid4().hex[:8]
    recipients = [f"killed-{tag}-{index}@example.com" for index in range(EMAILS)]
    smtp_sink.arm(recipients[0], accept_after_hold=False)
    ids: list[str] = []
    for index, recipient in enumerate(recipients):
        reply = await clients.notification.send_email(
            recipient,
            f"Delivery {tag}",
            "exactly once, please",
            idempotency_key=f"{tag}-{index}",
            metadata=OPERATOR,
        )
        ids.append(reply.notification_id)

    held = await asyncio.to_thread(smtp_sink.held.wait, 60)
    assert held, (
        "the worker never reached DATA for the held email:\n" + healthy_cluster["worker"].tail()
    )
    healthy_cluster["worker"].kill()
    smtp_sink.released.set()  # the dead worker never hears this 451
    healthy_cluster["worker"].restart()

    async def all_sent() -> bool:
        for notification_id in ids:
            reply = await clients.notification.get_notification(notification_id, metadata=OPERATOR)
            if reply.notification.status != pb.NOTIFICATION_STATUS_SENT:
                return False
        return True

    await eventually(all_sent, within=90, what="every email to be SENT", every=0.5)
    ours = [m for m in smtp_sink.messages if f"killed-{tag}-".encode() in m]
    per_recipient = {r: sum(r.encode() in m for m in ours) for r in recipients}
    assert per_recipient == dict.fromkeys(recipients, 1)
    message_ids = [MESSAGE_ID.search(m).group(1) for m in ours]  # type: ignore[union-attr]
    assert len(set(message_ids)) == EMAILS
    first = await clients.notification.get_notification(ids[0], metadata=OPERATOR)
    assert first.notification.attempts == 2  # the killed attempt counted, the second delivered


async def test_worker_sigterm_mid_delivery_finishes_it_and_repeats_nothing(
    clients: Clients, healthy_cluster: Cluster, smtp_sink: SelectiveSmtpSink
) -> None:
    """SIGTERM (warm shutdown) while the SMTP server holds one DATA: the worker finishes that
    delivery, exits 0, and after a new worker starts every email is SENT, each accepted once;
    the interrupted one in a single attempt."""
    tag = uuid.uuid4().hex[:8]
    recipients = [f"drained-{tag}-{index}@example.com" for index in range(6)]
    smtp_sink.arm(recipients[0], accept_after_hold=True)
    ids = []
    for index, recipient in enumerate(recipients):
        reply = await clients.notification.send_email(
            recipient,
            f"Drain {tag}",
            "finish what you started",
            idempotency_key=f"{tag}-{index}",
            metadata=OPERATOR,
        )
        ids.append(reply.notification_id)
    assert await asyncio.to_thread(smtp_sink.held.wait, 60), healthy_cluster["worker"].tail()
    worker = healthy_cluster["worker"]
    worker.terminate()
    await asyncio.sleep(0.5)  # the signal lands while the delivery is still in progress
    smtp_sink.released.set()
    assert await asyncio.to_thread(worker.wait_exit, 30.0) == 0, worker.tail()
    worker.restart()

    async def all_sent() -> bool:
        for notification_id in ids:
            reply = await clients.notification.get_notification(notification_id, metadata=OPERATOR)
            if reply.notification.status != pb.NOTIFICATION_STATUS_SENT:
                return False
        return True

    await eventually(all_sent, within=90, what="every email to be SENT", every=0.5)
    ours = [m for m in smtp_sink.messages if f"drained-{tag}-".encode() in m]
    assert {r: sum(r.encode() in m for m in ours) for r in recipients} == dict.fromkeys(
        recipients, 1
    )
    first = await clients.notification.get_notification(ids[0], metadata=OPERATOR)
    assert first.notification.attempts == 1  # finished by the stopping worker, not repeated
