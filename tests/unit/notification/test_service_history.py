"""GetNotificationHistory: a user's notifications, newest first, filtered and paged."""

from __future__ import annotations

import pytest
from meshcore.errors import InvalidArgument, NotFound
from meshcore.testing import FakeClock
from zoptal_notification.domain import EmailRequest, SmsRequest
from zoptal_notification.models import Channel, Status
from zoptal_notification.service import NotificationService

from .conftest import SENDER


async def _send_mixed(service: NotificationService, clock: FakeClock) -> list[str]:
    ids = []
    for index in range(5):
        request: EmailRequest | SmsRequest
        if index % 2:
            request = SmsRequest(
                to="+4915112345678", body=f"sms {index}", idempotency_key=f"k{index}", user_id="u1"
            )
        else:
            request = EmailRequest(
                to="u1@example.com",
                subject=f"mail {index}",
                body_text="x",
                idempotency_key=f"k{index}",
                user_id="u1",
            )
        ids.append((await service.send(request, caller=SENDER)).notification.id)
        clock.advance(1)
    await service.send(
        EmailRequest(
            to="u2@example.com", subject="s", body_text="x", idempotency_key="other", user_id="u2"
        ),
        caller=SENDER,
    )
    return ids


async def test_history_is_newest_first_with_the_total(
    service: NotificationService, clock: FakeClock
) -> None:
    """Only the user's notifications, latest first, with the count across pages."""
    ids = await _send_mixed(service, clock)
    page = await service.history("u1")
    assert [row.id for row in page.notifications] == list(reversed(ids))
    assert (page.total_count, page.page, page.limit) == (5, 1, 20)


async def test_history_pages_do_not_overlap(service: NotificationService, clock: FakeClock) -> None:
    """Page 2 continues exactly where page 1 stopped."""
    ids = await _send_mixed(service, clock)
    first = await service.history("u1", page=1, limit=2)
    second = await service.history("u1", page=2, limit=2)
    third = await service.history("u1", page=3, limit=2)
    seen = [row.id for p in (first, second, third) for row in p.notifications]
    assert seen == list(reversed(ids))
    assert third.total_count == 5


async def test_history_filters_by_channel_and_status(
    service: NotificationService, clock: FakeClock
) -> None:
    """Channel and status filters combine; an unmatched status gives an empty page."""
    await _send_mixed(service, clock)
    sms = await service.history("u1", channel=Channel.SMS)
    assert {row.channel for row in sms.notifications} == {"sms"}
    assert sms.total_count == 2
    queued = await service.history("u1", status=Status.QUEUED)
    assert queued.total_count == 5
    sent = await service.history("u1", status=Status.SENT)
    assert (sent.total_count, list(sent.notifications)) == (0, [])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"user_id": ""}, "user_id"), ({"page": -1}, "page"), ({"limit": 101}, "limit")],
)
async def test_history_rejects_bad_paging(
    service: NotificationService, kwargs: dict[str, object], field: str
) -> None:
    """Out-of-range arguments are INVALID_ARGUMENT naming the field."""
    arguments: dict[str, object] = {"user_id": "u1", **kwargs}
    user_id = str(arguments.pop("user_id"))
    with pytest.raises(InvalidArgument) as caught:
        await service.history(user_id, **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


async def test_an_unknown_notification_is_not_found(service: NotificationService) -> None:
    """GetNotification of an id nobody stored is NOT_FOUND."""
    with pytest.raises(NotFound):
        await service.get("0b5c1e9e-0000-0000-0000-000000000000")
