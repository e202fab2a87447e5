"""Fit a GetNotificationHistory page into 4 MiB (protos/README.md, Message sizes).

A page keeps its ``limit`` notifications, so page numbers never skip one. Only bodies are cut:
every other field of a notification is bounded small (recipient 4096, subject 998, last error
2000 characters: 100 notifications take under 3.5 MiB without their bodies), while an email's
text body alone may reach 100000 characters, 400 kB in UTF-8. The newest notifications keep
their whole bodies; from the first one that does not fit, bodies get what room is left (cut at a
character boundary, ``body_truncated`` set) and GetNotification returns them whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshcore.message_size import PageBudget
from zoptal.notification.v1 import notification_pb2 as pb

__all__ = ["fit_history_page"]

_NOTIFICATIONS_FIELD = pb.GetNotificationHistoryResponse.NOTIFICATIONS_FIELD_NUMBER
_BODY_FRAMING = 1 + 3
"""A body's tag and length prefix (a length under 2 MiB takes at most 3 varint bytes)."""


def fit_history_page(notifications: Sequence[pb.Notification]) -> list[pb.Notification]:
    """``notifications`` (newest first), their bodies cut where needed to fit the page budget."""
    budget = PageBudget(field_number=_NOTIFICATIONS_FIELD)
    page = list(notifications)
    if sum(budget.cost(item.ByteSize()) for item in page) <= budget.limit:
        return page
    # What each notification needs at the least: everything but its body.
    floors = [budget.cost(_without_body(item).ByteSize()) for item in page]
    reserved = sum(floors)
    fitted: list[pb.Notification] = []
    for item, floor in zip(page, floors, strict=True):
        reserved -= floor
        room = budget.remaining - reserved
        if budget.cost(item.ByteSize()) > room:
            item = _cut(item, room - floor - _BODY_FRAMING)
        budget.take(item.ByteSize())
        fitted.append(item)
    return fitted


def _without_body(item: pb.Notification) -> pb.Notification:
    bodiless = pb.Notification()
    bodiless.CopyFrom(item)
    bodiless.body = ""
    bodiless.body_truncated = True
    return bodiless


def _cut(item: pb.Notification, body_bytes: int) -> pb.Notification:
    cut = _without_body(item)
    # Dropping the bytes of a character split by the cut keeps the body valid UTF-8.
    cut.body = item.body.encode()[: max(body_bytes, 0)].decode("utf-8", "ignore")
    return cut
