"""A history page of 100 notifications with every field at its documented bound fits 4 MiB."""

from __future__ import annotations

from meshcore.message_size import MAX_RESPONSE_BYTES
from zoptal.notification.v1 import notification_pb2 as pb
from zoptal_notification.history_page import fit_history_page

WIDE = "\U0001d11e"  # four bytes in UTF-8


def _worst(index: int) -> pb.Notification:
    """Each field at the largest any channel allows (push device token, email subject/body)."""
    item = pb.Notification(
        id=f"{index:036d}",
        user_id=WIDE * 64,
        channel=pb.CHANNEL_PUSH,
        status=pb.NOTIFICATION_STATUS_FAILED,
        recipient=WIDE * 4096,
        subject=WIDE * 998,
        body=WIDE * 100_000,
        template=WIDE * 64,
        idempotency_key="k" * 128,
        attempts=2**31 - 1,
        last_error=WIDE * 2000,
        provider_message_id=WIDE * 998,
    )
    for stamp in (item.created_at, item.updated_at, item.sent_at, item.next_attempt_at):
        stamp.seconds, stamp.nanos = 253402300799, 999_999_999
    return item


def test_a_page_of_worst_case_notifications_fits_and_keeps_every_item() -> None:
    """100 maximal notifications (40 MB of bodies): all 100 are kept, in order, within 4 MiB;
    their other fields whole, the room left goes to the newest bodies, cut between characters
    and marked."""
    page = [_worst(index) for index in range(100)]
    fitted = fit_history_page(page)
    response = pb.GetNotificationHistoryResponse(
        notifications=fitted, total_count=2**31 - 1, page=2**31 - 1, limit=100
    )
    assert response.ByteSize() <= MAX_RESPONSE_BYTES
    assert [item.id for item in fitted] == [item.id for item in page]
    assert fitted[0].body_truncated
    assert len(fitted[0].body) > 80_000
    assert all(item.body_truncated and item.body == "" for item in fitted[1:])
    assert all(item.body == WIDE * len(item.body) for item in fitted)
    assert all(item.recipient == WIDE * 4096 for item in fitted)


def test_a_page_that_fits_is_left_alone() -> None:
    """Nothing is cut, nor marked, when the whole page fits."""
    page = [_worst(index) for index in range(5)]
    assert fit_history_page(page) == page
    assert not any(item.body_truncated for item in fit_history_page(page))
