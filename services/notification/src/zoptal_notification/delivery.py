"""One delivery attempt, as the worker runs it: claim the row, call the provider, record.

Exactly one attempt at a time owns a notification (the claim), and only the owner may record
the outcome. The attempt counter lives in the row, not in the broker message, so retries,
redeliveries after a lost worker and outbox re-dispatches all count against the same limit.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.timeutil import backoff, utc_now

from zoptal_notification.models import Notification, Status
from zoptal_notification.providers.base import DeliveryError, OutgoingMessage, Provider
from zoptal_notification.repository import NotificationRepository

__all__ = ["DeliveryOutcome", "DeliveryPolicy", "DeliveryService", "retry_delay"]

logger = logging.getLogger(__name__)


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.1,
    rng: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff after the ``attempt``-th failure (1-based), capped, plus up to
    ``jitter`` of itself at random so a burst of failures does not retry in lockstep."""
    return backoff(attempt, base, cap) * (1 + jitter * rng())


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int
    backoff_base: float
    backoff_cap: float
    lease: float
    redispatch_after: float
    jitter: float = 0.1


@dataclass(frozen=True)
class DeliveryOutcome:
    kind: Literal["sent", "failed", "retry", "skipped"]
    detail: str = ""
    retry_in: float | None = None
    """For ``retry``: seconds until the next attempt is due."""
    channel: str | None = None
    """The notification's channel, once its row was read (the metrics' label)."""
    attempt_failed: bool = False
    """For ``retry``: this attempt failed and the next is scheduled (not merely deferred
    because another attempt holds the claim)."""
    latency_seconds: float | None = None
    """For ``sent``: from the notification's creation until the provider accepted it."""


class DeliveryService:
    def __init__(
        self,
        database: Database,
        providers: Mapping[str, Provider],
        policy: DeliveryPolicy,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
        repository: NotificationRepository | None = None,
    ) -> None:
        self._database = database
        self._providers = providers
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._repository = repository or NotificationRepository()

    async def deliver(self, notification_id: str) -> DeliveryOutcome:
        token = uuid.uuid4().hex
        now = utc_now(self._clock)
        async with self._database.session() as session:
            claimed = await self._repository.claim(
                session,
                notification_id,
                token=token,
                now=now,
                lease_until=now + timedelta(seconds=self._policy.lease),
            )
            row = await self._repository.get(session, notification_id)
        if row is None:
            return DeliveryOutcome("skipped", "no such notification")
        if not claimed:
            return self._not_claimed(row, now)
        if row.attempts > self._policy.max_attempts:
            # Earlier attempts died with their worker (their claims ran out): a message that
            # kills workers must not be retried for ever.
            return await self._fail(
                row, token, f"gave up after {row.attempts - 1} interrupted attempts"
            )
        provider = self._providers.get(row.channel)
        if provider is None:
            return await self._fail(row, token, f"no provider for channel {row.channel!r}")
        try:
            provider_message_id = await provider.send(_outgoing(row))
        except DeliveryError as exc:
            return await self._after_failure(row, token, exc.reason, transient=exc.transient)
        except Exception as exc:
            logger.exception("provider %s crashed on %s", provider.name, row.id)
            return await self._after_failure(
                row, token, f"{provider.name} provider error: {type(exc).__name__}", transient=True
            )
        async with self._database.session() as session:
            recorded = await self._repository.record_sent(
                session,
                row.id,
                token=token,
                now=utc_now(self._clock),
                provider=provider.name,
                provider_message_id=provider_message_id,
            )
        if not recorded:
            logger.error("notification %s was sent but its claim had been taken over", row.id)
        latency = (utc_now(self._clock) - row.created_at).total_seconds()
        return DeliveryOutcome(
            "sent", provider_message_id, channel=row.channel, latency_seconds=latency
        )

    def _not_claimed(self, row: Notification, now: datetime) -> DeliveryOutcome:
        if row.status in (Status.SENT.value, Status.FAILED.value):
            return DeliveryOutcome("skipped", f"already {row.status}", channel=row.channel)
        if row.status == Status.SENDING.value and row.claimed_until is not None:
            # Another attempt holds the claim (or a dead worker's claim has not run out yet,
            # which is how a redelivery after a lost worker arrives): look again when it ends.
            wait = (row.claimed_until - now).total_seconds()
            return DeliveryOutcome(
                "retry",
                "claimed by another attempt",
                retry_in=max(wait, 0.0),
                channel=row.channel,
            )
        # Queued but not due: the retry already scheduled (or the outbox relay) will run it.
        return DeliveryOutcome("skipped", "not due yet", channel=row.channel)

    async def _after_failure(
        self, row: Notification, token: str, reason: str, *, transient: bool
    ) -> DeliveryOutcome:
        if not transient:
            return await self._fail(row, token, reason)
        if row.attempts >= self._policy.max_attempts:
            return await self._fail(row, token, f"after {row.attempts} attempts: {reason}")
        delay = retry_delay(
            row.attempts,
            base=self._policy.backoff_base,
            cap=self._policy.backoff_cap,
            jitter=self._policy.jitter,
            rng=self._rng,
        )
        now = utc_now(self._clock)
        next_attempt = now + timedelta(seconds=delay)
        async with self._database.session() as session:
            await self._repository.record_retry(
                session,
                row.id,
                token=token,
                now=now,
                error=reason,
                next_attempt_at=next_attempt,
                dispatch_after=next_attempt + timedelta(seconds=self._policy.redispatch_after),
            )
        logger.info("notification %s attempt %d failed (%s)", row.id, row.attempts, reason)
        return DeliveryOutcome(
            "retry", reason, retry_in=delay, channel=row.channel, attempt_failed=True
        )

    async def _fail(self, row: Notification, token: str, reason: str) -> DeliveryOutcome:
        async with self._database.session() as session:
            await self._repository.record_failed(
                session, row.id, token=token, now=utc_now(self._clock), error=reason
            )
        logger.warning("notification %s failed: %s", row.id, reason)
        return DeliveryOutcome("failed", reason, channel=row.channel)


def _outgoing(row: Notification) -> OutgoingMessage:
    return OutgoingMessage(
        notification_id=row.id,
        channel=row.channel,
        recipient=row.recipient,
        user_id=row.user_id,
        subject=row.subject,
        body=row.body,
        body_html=row.body_html,
        data={str(k): str(v) for k, v in (row.data or {}).items()},
    )
