"""The publisher hands the delivery task the send call's trace context and request id."""

from __future__ import annotations

from typing import Any

from meshcore.context import call_scope
from zoptal_notification.dispatch import DELIVER_TASK_NAME, CeleryDispatcher

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class RecordingCelery:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.sent.append((name, options))


async def test_the_task_carries_the_callers_trace_and_request_id() -> None:
    """Inside a call, the task's kwargs continue its trace and name its request."""
    celery = RecordingCelery()
    dispatcher = CeleryDispatcher(celery, queue="notifications")
    with call_scope(request_id="req-1", traceparent=TRACEPARENT):
        await dispatcher.dispatch("n-1")
    dispatcher.close()
    name, options = celery.sent[0]
    assert (name, options["args"], options["queue"]) == (
        DELIVER_TASK_NAME,
        ["n-1"],
        "notifications",
    )
    assert options["kwargs"] == {"trace": {"traceparent": TRACEPARENT, "x-request-id": "req-1"}}
    assert options["retry"] is False


async def test_a_relay_dispatch_outside_any_call_sends_no_trace() -> None:
    """The outbox relay belongs to no call: the task gets no trace kwargs."""
    celery = RecordingCelery()
    dispatcher = CeleryDispatcher(celery, queue="notifications")
    await dispatcher.dispatch("n-2")
    dispatcher.close()
    assert celery.sent[0][1]["kwargs"] == {}
