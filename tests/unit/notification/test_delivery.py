"""Worker-side delivery: claim, provider call, outcome, retries and the attempt limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from meshcore.db import Database
from meshcore.testing import FakeClock
from meshcore.timeutil import utc_now
from zoptal_notification.delivery import DeliveryPolicy, DeliveryService, retry_delay
from zoptal_notification.domain import EmailRequest
from zoptal_notification.models import Status
from zoptal_notification.providers.base import DeliveryError, OutgoingMessage
from zoptal_notification.repository import NotificationRepository
from zoptal_notification.service import NotificationService
from zoptal_notification.tasks import delivery_result

from .conftest import SENDER

POLICY = DeliveryPolicy(
    max_attempts=3,
    backoff_base=2.0,
    backoff_cap=60.0,
    lease=120.0,
    redispatch_after=300.0,
    jitter=0.0,
)


class ScriptedProvider:
    """Answers each send with the next scripted result (an exception or a message id)."""

    name = "scripted"

    def __init__(self, *results: str | Exception) -> None:
        self.results = list(results)
        self.sent: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage) -> str:
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        self.sent.append(message)
        return result

    async def close(self) -> None:
        return None


def _delivery(database: Database, provider: ScriptedProvider, clock: FakeClock) -> DeliveryService:
    return DeliveryService(database, {"email": provider}, POLICY, clock=clock)


async def _queued(service: NotificationService) -> str:
    request = EmailRequest(
        to="a@example.com", subject="s", body_text="b", idempotency_key="k", user_id="u"
    )
    return (await service.send(request, caller=SENDER)).notification.id


async def test_a_successful_delivery_is_recorded_as_sent(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """SENT with the provider's message id, and nothing left for the outbox relay."""
    notification_id = await _queued(service)
    provider = ScriptedProvider("<id@x>")
    outcome = await _delivery(database, provider, clock).deliver(notification_id)
    row = await service.get(notification_id)
    assert outcome.kind == "sent"
    assert (row.status, row.attempts, row.provider_message_id) == ("sent", 1, "<id@x>")
    assert row.dispatch_after is None
    assert row.sent_at is not None
    assert provider.sent[0].recipient == "a@example.com"


async def test_a_transient_failure_schedules_a_retry_with_backoff(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """QUEUED again, with the reason, the attempt count and when the next one is due."""
    notification_id = await _queued(service)
    provider = ScriptedProvider(DeliveryError("smtp 451 busy", transient=True))
    outcome = await _delivery(database, provider, clock).deliver(notification_id)
    row = await service.get(notification_id)
    assert (outcome.kind, outcome.retry_in) == ("retry", 2.0)
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, "smtp 451 busy")
    assert row.next_attempt_at == row.updated_at + timedelta(seconds=2)


async def test_retries_end_in_failed_with_the_last_reason(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """After max_attempts transient failures the notification is FAILED, saying why."""
    notification_id = await _queued(service)
    provider = ScriptedProvider(
        *(DeliveryError(f"smtp 451 try {n}", transient=True) for n in (1, 2, 3))
    )
    delivery = _delivery(database, provider, clock)
    kinds = []
    for _ in range(3):
        outcome = await delivery.deliver(notification_id)
        kinds.append(outcome.kind)
        clock.advance(outcome.retry_in or 0)
    row = await service.get(notification_id)
    assert kinds == ["retry", "retry", "failed"]
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "after 3 attempts: smtp 451 try 3"
    assert row.dispatch_after is None


async def test_a_permanent_failure_fails_at_once(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """A 5xx reply is not retried."""
    notification_id = await _queued(service)
    provider = ScriptedProvider(DeliveryError("smtp 550 no such user", transient=False))
    outcome = await _delivery(database, provider, clock).deliver(notification_id)
    assert outcome.kind == "failed"
    assert (await service.get(notification_id)).last_error == "smtp 550 no such user"


async def test_an_attempt_before_the_retry_is_due_does_nothing(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """A duplicate task arriving early neither sends nor counts an attempt."""
    notification_id = await _queued(service)
    provider = ScriptedProvider(DeliveryError("busy", transient=True), "<id>")
    delivery = _delivery(database, provider, clock)
    await delivery.deliver(notification_id)
    early = await delivery.deliver(notification_id)
    assert early.kind == "skipped"
    assert (await service.get(notification_id)).attempts == 1


async def test_a_sent_notification_is_never_delivered_again(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """A redelivered task for a SENT row is a no-op: no second provider call."""
    notification_id = await _queued(service)
    provider = ScriptedProvider("<id>")
    delivery = _delivery(database, provider, clock)
    await delivery.deliver(notification_id)
    again = await delivery.deliver(notification_id)
    assert again.kind == "skipped"
    assert len(provider.sent) == 1


async def test_a_live_claim_blocks_a_second_attempt_until_its_lease_ends(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """While a worker holds the row, another task is told to come back at lease end; after
    the lease a dead worker's row is taken over and delivered once."""
    notification_id = await _queued(service)
    now = utc_now(clock)
    async with database.session() as session:
        assert await NotificationRepository().claim(
            session,
            notification_id,
            token="dead-worker",
            now=now,
            lease_until=now + timedelta(seconds=120),
        )
    provider = ScriptedProvider("<id>")
    delivery = _delivery(database, provider, clock)
    blocked = await delivery.deliver(notification_id)
    assert (blocked.kind, blocked.retry_in) == ("retry", 120.0)
    clock.advance(120)
    taken_over = await delivery.deliver(notification_id)
    row = await service.get(notification_id)
    assert taken_over.kind == "sent"
    assert (row.status, row.attempts, len(provider.sent)) == ("sent", 2, 1)


async def test_a_stale_claim_holder_cannot_record_an_outcome(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """Once another attempt took the row over, the old token's result is refused."""
    notification_id = await _queued(service)
    repository = NotificationRepository()
    now = utc_now(clock)
    async with database.session() as session:
        await repository.claim(session, notification_id, token="old", now=now, lease_until=now)
        assert await repository.claim(
            session, notification_id, token="new", now=now, lease_until=now + timedelta(60)
        )
        assert not await repository.record_failed(
            session, notification_id, token="old", now=now, error="late"
        )
    assert (await service.get(notification_id)).status == Status.SENDING.value


async def test_a_message_that_keeps_killing_workers_is_failed(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """Claims that ran out count as attempts; past the limit the row fails, unsent."""
    notification_id = await _queued(service)
    repository = NotificationRepository()
    for n in range(POLICY.max_attempts):
        now = utc_now(clock)
        async with database.session() as session:
            await repository.claim(
                session, notification_id, token=f"w{n}", now=now, lease_until=now
            )
    provider = ScriptedProvider("<id>")
    outcome = await _delivery(database, provider, clock).deliver(notification_id)
    assert outcome.kind == "failed"
    assert "interrupted" in outcome.detail
    assert provider.sent == []


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (20, 60.0)]
)
def test_retry_delay_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    """Exponential backoff from the base, never above the cap (jitter off)."""
    assert retry_delay(attempt, base=2.0, cap=60.0, jitter=0.0) == expected


def test_retry_delay_jitter_adds_at_most_its_fraction() -> None:
    """Jitter spreads retries upward by at most the given fraction."""
    assert retry_delay(1, base=10.0, cap=60.0, jitter=0.1, rng=lambda: 1.0) == pytest.approx(11)
    assert retry_delay(1, base=10.0, cap=60.0, jitter=0.1, rng=lambda: 0.0) == 10.0


async def test_outcomes_carry_what_the_worker_metrics_label_and_measure(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """The channel on every outcome, a failed attempt's retry told from a deferred one, and
    the time from creation to sent (retries included) on a sent one."""
    notification_id = await _queued(service)
    provider = ScriptedProvider(DeliveryError("busy", transient=True), "<id>")
    delivery = _delivery(database, provider, clock)
    retry = await delivery.deliver(notification_id)
    early = await delivery.deliver(notification_id)
    clock.advance(30.0)
    sent = await delivery.deliver(notification_id)
    assert (retry.kind, retry.attempt_failed, retry.channel) == ("retry", True, "email")
    assert delivery_result(retry) == "retried"
    assert (early.kind, early.channel, delivery_result(early)) == ("skipped", "email", "skipped")
    assert (sent.kind, sent.channel, delivery_result(sent)) == ("sent", "email", "sent")
    assert sent.latency_seconds == pytest.approx(30.0)


async def test_a_retry_that_only_waits_for_another_claim_is_deferred(
    database: Database, service: NotificationService, clock: FakeClock
) -> None:
    """Another attempt holds the claim: no attempt was made, so nothing failed."""
    notification_id = await _queued(service)
    repository = NotificationRepository()
    async with database.session() as session:
        now = utc_now(clock)
        assert await repository.claim(
            session,
            notification_id,
            token="other",
            now=now,
            lease_until=now + timedelta(seconds=60),
        )
    outcome = await _delivery(database, ScriptedProvider(), clock).deliver(notification_id)
    assert (outcome.kind, outcome.attempt_failed, outcome.channel) == ("retry", False, "email")
    assert delivery_result(outcome) == "deferred"
