"""The outbox relay: a committed notification is handed to the broker even if the first
enqueue never happened or the broker lost the message."""

from __future__ import annotations

from meshcore.db import Database
from meshcore.testing import FakeClock
from zoptal_notification.dispatch import OutboxRelay
from zoptal_notification.domain import EmailRequest
from zoptal_notification.service import NotificationService

from .conftest import SENDER, RecordingDispatcher


def _email(key: str) -> EmailRequest:
    return EmailRequest(to="a@example.com", subject="s", body_text="b", idempotency_key=key)


def _relay(database: Database, dispatcher: RecordingDispatcher, clock: FakeClock) -> OutboxRelay:
    return OutboxRelay(database, dispatcher, redispatch_after=300.0, interval=5.0, clock=clock)


async def test_a_row_never_enqueued_is_dispatched_once_the_grace_has_passed(
    database: Database,
    dispatcher: RecordingDispatcher,
    service: NotificationService,
    clock: FakeClock,
) -> None:
    """Broker down at send time: the relay picks the row up after the grace, exactly once."""
    dispatcher.fail = True
    sent = await service.send(_email("a"), caller=SENDER)
    dispatcher.fail = False
    relay = _relay(database, dispatcher, clock)
    assert await relay.run_once() == 0
    clock.advance(10)
    assert await relay.run_once() == 1
    assert dispatcher.dispatched == [sent.notification.id]
    assert await relay.run_once() == 0


async def test_a_dispatched_row_no_worker_took_is_dispatched_again(
    database: Database,
    dispatcher: RecordingDispatcher,
    service: NotificationService,
    clock: FakeClock,
) -> None:
    """A message the broker lost is re-sent after the redispatch period, not before."""
    sent = await service.send(_email("a"), caller=SENDER)
    relay = _relay(database, dispatcher, clock)
    clock.advance(299)
    assert await relay.run_once() == 0
    clock.advance(2)
    assert await relay.run_once() == 1
    assert dispatcher.dispatched == [sent.notification.id, sent.notification.id]


async def test_the_relay_stops_a_pass_while_the_broker_is_down(
    database: Database,
    dispatcher: RecordingDispatcher,
    service: NotificationService,
    clock: FakeClock,
) -> None:
    """Rows stay due while the broker refuses them and go out when it is back."""
    dispatcher.fail = True
    for key in ("a", "b", "c"):
        await service.send(_email(key), caller=SENDER)
    clock.advance(11)
    relay = _relay(database, dispatcher, clock)
    assert await relay.run_once() == 0
    dispatcher.fail = False
    assert await relay.run_once() == 3
