"""Handing stored notifications to the broker: the post-commit enqueue and the outbox relay.

A send commits its row first and enqueues second, so a crash or a broker outage in between
leaves a committed row that nobody has enqueued. Every active row therefore carries
``dispatch_after``: the moment the relay hands it to the broker again unless a worker has moved
it on by then. The relay may enqueue a row twice (a slow first enqueue, two relays); the worker's
claim makes the second task a no-op, so duplicates cost a message and never a second delivery.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import current_request_id, inbound_traceparent
from meshcore.db import Database
from meshcore.timeutil import utc_now
from opentelemetry import propagate

from zoptal_notification.repository import NotificationRepository

if TYPE_CHECKING:
    from celery import Celery  # type: ignore[import-untyped]

__all__ = [
    "DELIVER_TASK_NAME",
    "CeleryDispatcher",
    "Dispatcher",
    "OutboxRelay",
    "trace_carrier",
]

DELIVER_TASK_NAME = "zoptal_notification.deliver_notification"

logger = logging.getLogger(__name__)


def trace_carrier() -> dict[str, str]:
    """The current call's W3C trace context and request id, for the delivery task to continue.

    The send RPC and its delivery are one trace even though a queue sits between them.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)  # the current span, when this process traces
    if "traceparent" not in carrier and (inbound := inbound_traceparent()):
        carrier["traceparent"] = inbound  # tracing off here: pass the caller's on unchanged
    if request_id := current_request_id():
        carrier["x-request-id"] = request_id
    return carrier


class Dispatcher(Protocol):
    async def dispatch(self, notification_id: str) -> None:
        """Enqueue one delivery task; raise when the broker did not take it."""
        ...


class CeleryDispatcher:
    """Publishes delivery tasks by name (the server never imports the worker's task code).

    kombu publishes synchronously, so it runs on a small thread pool of its own: a slow broker
    never blocks the event loop, and never starves the loop's default executor.
    """

    def __init__(self, app: Celery, *, queue: str, publish_timeout: float = 5.0) -> None:
        self._app = app
        self._queue = queue
        self._publish_timeout = publish_timeout
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    async def dispatch(self, notification_id: str) -> None:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="celery-publish"
            )
        # Read the call's context here: executor threads do not see this task's ContextVars.
        trace = trace_carrier()
        loop = asyncio.get_running_loop()
        publish = loop.run_in_executor(self._executor, self._publish, notification_id, trace)
        await asyncio.wait_for(publish, self._publish_timeout)

    def _publish(self, notification_id: str, trace: dict[str, str]) -> None:
        # retry=False: the outbox relay is the retry, so an outage fails fast instead of
        # holding the RPC in kombu's reconnect loop.
        self._app.send_task(
            DELIVER_TASK_NAME,
            args=[notification_id],
            kwargs={"trace": trace} if trace else {},
            queue=self._queue,
            retry=False,
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)
            self._executor = None


class OutboxRelay:
    """Re-dispatches every active row whose ``dispatch_after`` has passed."""

    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        *,
        redispatch_after: float,
        interval: float,
        batch_size: int = 200,
        clock: Clock = SYSTEM_CLOCK,
        repository: NotificationRepository | None = None,
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._redispatch_after = timedelta(seconds=redispatch_after)
        self._interval = interval
        self._batch_size = batch_size
        self._clock = clock
        self._repository = repository or NotificationRepository()

    async def run_once(self) -> int:
        """One pass; the number of rows handed to the broker."""
        now = utc_now(self._clock)
        async with self._database.session() as session:
            due = await self._repository.due_for_dispatch(session, now=now, limit=self._batch_size)
        dispatched = 0
        for row in due:
            try:
                await self._dispatcher.dispatch(row.notification_id)
            except Exception as exc:
                # The broker is down: stop this pass, the rows stay due for the next one.
                logger.warning("outbox relay: broker refused a task (%s); retrying later", exc)
                break
            next_deadline = utc_now(self._clock)
            async with self._database.session() as session:
                await self._repository.mark_dispatched(
                    session,
                    row.notification_id,
                    seen_dispatch_after=row.dispatch_after,
                    next_dispatch_after=next_deadline + self._redispatch_after,
                )
            dispatched += 1
        if dispatched:
            logger.info("outbox relay: re-dispatched %d notification(s)", dispatched)
        return dispatched

    async def run(self) -> None:
        """Pass after pass until cancelled; a failing pass is logged and the loop goes on."""
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox relay pass failed")
            await self._clock.sleep(self._interval)
