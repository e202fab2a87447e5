"""The usage outbox: RecordUsage calls to Billing that must happen, whatever fails meanwhile.

Rows are written in the same transaction as the change that needs them (a deleted project's
release, a failed create's compensation) and delivered in order by ``UsageOutboxDispatcher``,
with exponential backoff while Billing is down. Every row carries its own idempotency key, so a
delivery whose answer was lost is simply repeated.

A *compensation* cancels a usage that Billing may or may not have recorded (the call timed out,
or Project crashed mid-create): it replays the original call with the original key, which either
returns the first record or records it now, and then releases it with ``<key>:release``. Either
way the net effect is zero, and both steps are safe to repeat.

The dispatcher also sweeps rows stuck in ``creating`` / ``pending`` (Project died between the
Billing call and its commit): after ``stale_after`` seconds they are deleted and compensated.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from meshcore.background import PollWaiter
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from meshcore.timeutil import as_utc, backoff, utc_now

from zoptal_project.ports import BilledMetric, BillingGateway
from zoptal_project.repository import CREATING, ProjectRepository

__all__ = ["UsageOutboxDispatcher", "compensation", "queued_usage"]

logger = logging.getLogger(__name__)

# Billing answers these only for a call that can never succeed; retrying would block the queue.
_PERMANENT = (AlreadyExists, FailedPrecondition, InvalidArgument)


def queued_usage(
    now: datetime,
    user_id: str,
    metric: BilledMetric,
    quantity: int,
    idempotency_key: str,
    scope_id: str = "",
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "metric": metric.value,
        "scope_id": scope_id,
        "quantity": quantity,
        "idempotency_key": idempotency_key,
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
    }


def compensation(
    now: datetime,
    user_id: str,
    metric: BilledMetric,
    quantity: int,
    idempotency_key: str,
    scope_id: str = "",
) -> list[dict[str, Any]]:
    """Rows that cancel ``quantity`` under ``idempotency_key`` whether or not it was recorded."""
    return [
        queued_usage(now, user_id, metric, quantity, idempotency_key, scope_id),
        queued_usage(now, user_id, metric, -quantity, f"{idempotency_key}:release", scope_id),
    ]


class UsageOutboxDispatcher:
    def __init__(
        self,
        database: Database,
        billing: BillingGateway,
        *,
        clock: Clock = SYSTEM_CLOCK,
        batch_size: int = 50,
        poll_interval: float = 2.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 60.0,
        stale_after: float = 300.0,
        min_pass_interval: float = 0.02,
    ) -> None:
        self._db = database
        self._billing = billing
        self._clock = clock
        self._batch_size = batch_size
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._stale_after = timedelta(seconds=stale_after)
        self._waiter = PollWaiter(poll_interval, clock=clock)
        # A pass costs a look-up and a delete whatever it carries: under load, rows queued
        # while one pass runs (or just ran) wait up to this long and go together in the next.
        self._min_pass_interval = min_pass_interval
        # Creates this process gave up on while the database was away: discarded as soon as it
        # answers again, instead of waiting ``stale_after`` for the sweeper to find them.
        self._abandoned: dict[str, str] = {}

    def wake(self) -> None:
        """Deliver now rather than at the next poll (called after rows are committed)."""
        self._waiter.wake()

    def backoff(self, attempts: int) -> float:
        return backoff(attempts, self._initial_backoff, self._max_backoff)

    async def deliver_due(self) -> int:
        """Deliver queued calls in order until the queue is empty or one fails; how many went.

        The rows a pass is done with are deleted together at its end: a session per row cost
        more than the Billing call. Should this process die before that delete, they are
        delivered again, which their idempotency keys make harmless."""
        async with self._db.session() as session:
            rows = await ProjectRepository(session).next_usage(self._batch_size)
            queued = [(row.id, row.attempts, as_utc(row.next_attempt_at), row) for row in rows]
        done: list[int] = []  # delivered, or refused for good
        delivered = 0
        try:
            for row_id, attempts, next_attempt_at, row in queued:
                now = utc_now(self._clock)
                if next_attempt_at > now:
                    break  # the head is backing off; later rows wait so releases stay in order
                try:
                    await self._billing.record_usage(
                        row.user_id,
                        BilledMetric(row.metric),
                        row.quantity,
                        idempotency_key=row.idempotency_key,
                        scope_id=row.scope_id,
                    )
                except _PERMANENT as exc:
                    logger.error(
                        "usage outbox row %s dropped: Billing refused it for good (%s)",
                        row_id,
                        exc,
                    )
                    done.append(row_id)
                    continue
                except Exception as exc:
                    retry_at = now + timedelta(seconds=self.backoff(attempts + 1))
                    async with self._db.session() as session:
                        await ProjectRepository(session).usage_failed(
                            row_id,
                            attempts=attempts + 1,
                            next_attempt_at=retry_at,
                            error=f"{type(exc).__name__}: {exc}"[:500],
                        )
                    logger.info("usage outbox: Billing call failed (%s); retrying later", exc)
                    break
                done.append(row_id)
                delivered += 1
        finally:
            if done:
                async with self._db.session() as session:
                    await ProjectRepository(session).usage_done(done)
        return delivered

    def abandon(self, project_id: str, owner_id: str) -> None:
        """Discard (and compensate) this ``creating`` project on the next pass."""
        self._abandoned[project_id] = owner_id
        self.wake()

    async def discard_abandoned(self) -> int:
        """Delete and compensate the creates this process abandoned; how many it removed."""
        removed = 0
        for project_id, owner_id in list(self._abandoned.items()):
            if await self._discard_creating(project_id, owner_id, utc_now(self._clock)):
                removed += 1
            # Gone either way: deleted now, or it completed (``active``) after all.
            del self._abandoned[project_id]
        return removed

    async def _discard_creating(self, project_id: str, owner_id: str, now: datetime) -> bool:
        async with self._db.session() as session:
            repository = ProjectRepository(session)
            if not await repository.delete_project(project_id, state=CREATING):
                return False
            # Billing may or may not have counted it: the compensation nets to zero either way.
            await repository.enqueue_usage(
                compensation(now, owner_id, BilledMetric.PROJECTS, 1, project_id)
            )
            return True

    async def sweep_stale(self) -> int:
        """Delete and compensate creates and member adds abandoned mid-way; how many."""
        now = utc_now(self._clock)
        before = now - self._stale_after
        swept = 0
        async with self._db.session() as session:
            repository = ProjectRepository(session)
            projects = await repository.stale_creations(before, self._batch_size)
            members = await repository.stale_pending_members(before, self._batch_size)
        for project in projects:
            if await self._discard_creating(project.id, project.owner_id, now):
                swept += 1
        for member in members:
            async with self._db.session() as session:
                repository = ProjectRepository(session)
                owner = await repository.owner_of(member.project_id)
                removed = await repository.remove_member(
                    member.project_id, member.user_id, seat_id=member.seat_id, state="pending"
                )
                if removed and owner is not None:
                    await repository.enqueue_usage(
                        compensation(
                            now,
                            owner,
                            BilledMetric.MEMBERS_PER_PROJECT,
                            1,
                            seat_key(member.project_id, member.seat_id),
                            member.project_id,
                        )
                    )
                    swept += 1
        if swept:
            logger.warning("swept %d abandoned creates or member adds", swept)
        return swept

    async def run(self, *, sweep_every: float = 60.0) -> None:
        """Deliver and sweep until cancelled."""
        next_sweep = self._clock.monotonic()
        while True:
            started = self._clock.monotonic()
            try:
                if self._abandoned:
                    await self.discard_abandoned()
                if self._clock.monotonic() >= next_sweep:
                    await self.sweep_stale()
                    next_sweep = self._clock.monotonic() + sweep_every
                await self.deliver_due()
            except Exception as exc:  # the database may be down: keep the loop alive
                logger.warning("usage outbox pass failed: %s", exc)
            await self._waiter.wait()
            rest = self._min_pass_interval - (self._clock.monotonic() - started)
            if rest > 0:
                await self._clock.sleep(rest)


def seat_key(project_id: str, seat_id: str) -> str:
    """Billing idempotency key of one member's seat in a project."""
    return f"{project_id}:seat:{seat_id}"
