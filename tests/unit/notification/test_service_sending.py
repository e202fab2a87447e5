"""Sends: stored durably first, enqueued after commit, idempotent by key."""

from __future__ import annotations

import asyncio

import pytest
from meshcore.db import Database
from meshcore.errors import AlreadyExists, InvalidArgument
from zoptal_notification.domain import EmailRequest, PushRequest, SmsRequest
from zoptal_notification.models import Status
from zoptal_notification.repository import NotificationRepository
from zoptal_notification.service import NotificationService

from .conftest import SENDER, RecordingDispatcher


def email(key: str = "k-1", **overrides: object) -> EmailRequest:
    fields: dict[str, object] = {
        "to": "ada@example.com",
        "user_id": "user-1",
        "subject": "Hello",
        "body_text": "Hi Ada",
        "idempotency_key": key,
    }
    fields.update(overrides)
    return EmailRequest(**fields)  # type: ignore[arg-type]


async def test_send_stores_a_queued_row_that_is_committed_before_the_enqueue(
    database: Database, dispatcher: RecordingDispatcher, service: NotificationService
) -> None:
    """The dispatcher sees the row in a fresh session: the enqueue happens after the commit."""
    seen_in_other_session: list[str] = []

    async def dispatch(notification_id: str) -> None:
        async with database.session() as session:
            row = await NotificationRepository().get(session, notification_id)
        assert row is not None
        seen_in_other_session.append(row.status)

    dispatcher.dispatch = dispatch  # type: ignore[method-assign]
    result = await service.send(email(), caller=SENDER)
    assert seen_in_other_session == [Status.QUEUED.value]
    assert result.notification.status == Status.QUEUED.value
    assert result.deduplicated is False


async def test_the_same_idempotency_key_twice_creates_one_notification(
    dispatcher: RecordingDispatcher, service: NotificationService
) -> None:
    """A repeat returns the first notification, flagged deduplicated, and enqueues nothing."""
    first = await service.send(email(), caller=SENDER)
    second = await service.send(email(), caller=SENDER)
    assert second.notification.id == first.notification.id
    assert second.deduplicated is True
    assert dispatcher.dispatched == [first.notification.id]
    page = await service.history("user-1")
    assert page.total_count == 1


async def test_concurrent_sends_with_one_key_store_one_row(service: NotificationService) -> None:
    """Racing sends with the same key all answer with the same single notification."""
    results = await asyncio.gather(*(service.send(email(), caller=SENDER) for _ in range(8)))
    assert len({result.notification.id for result in results}) == 1
    assert sum(not result.deduplicated for result in results) == 1


async def test_the_same_key_with_different_content_is_already_exists(
    service: NotificationService,
) -> None:
    """Reusing a key for another email is refused rather than silently ignored."""
    await service.send(email(), caller=SENDER)
    with pytest.raises(AlreadyExists, match="idempotency key"):
        await service.send(email(subject="Something else"), caller=SENDER)


async def test_keys_are_scoped_to_the_channel(service: NotificationService) -> None:
    """One key on email and on SMS names two different notifications."""
    by_email = await service.send(email(key="shared"), caller=SENDER)
    by_sms = await service.send(
        SmsRequest(to="+4915112345678", body="hi", idempotency_key="shared", user_id="user-1"),
        caller=SENDER,
    )
    assert by_sms.notification.id != by_email.notification.id
    assert not by_sms.deduplicated


async def test_keys_are_scoped_to_the_caller(service: NotificationService) -> None:
    """Another caller's key, even with other content, is a notification of its own; each
    caller's repeats (racing ones too) still return its own."""
    results = await asyncio.gather(
        *(service.send(email(key="shared"), caller=SENDER) for _ in range(4)),
        *(service.send(email(key="shared", subject="Other"), caller="user:root") for _ in range(4)),
    )
    ours, theirs = results[:4], results[4:]
    assert len({result.notification.id for result in ours}) == 1
    assert len({result.notification.id for result in theirs}) == 1
    assert ours[0].notification.id != theirs[0].notification.id
    assert sum(not result.deduplicated for result in results) == 2
    assert (ours[0].notification.caller, theirs[0].notification.subject) == (SENDER, "Other")


async def test_a_broker_outage_still_answers_ok_and_leaves_the_row_for_the_relay(
    dispatcher: RecordingDispatcher, service: NotificationService
) -> None:
    """The notification is durable once committed even when the enqueue fails."""
    dispatcher.fail = True
    result = await service.send(email(), caller=SENDER)
    stored = await service.get(result.notification.id)
    assert stored.status == Status.QUEUED.value
    assert stored.dispatch_after is not None
    assert stored.dispatch_after > stored.created_at


async def test_a_usage_limit_template_is_rendered_at_send_time(
    service: NotificationService,
) -> None:
    """Templated emails store the rendered subject and bodies, with HTML escaping."""
    result = await service.send(
        email(
            subject="",
            body_text="",
            template="usage_limit_warning",
            template_data={"metric": "projects", "used": "8", "limit": "10", "plan": "<b>"},
        ),
        caller=SENDER,
    )
    row = result.notification
    assert row.subject == "You have used 80% of your projects limit"
    assert "8 of the 10 projects" in row.body
    assert "&lt;b&gt;" in row.body_html
    assert row.template == "usage_limit_warning"


async def test_line_breaks_are_fine_in_values_only_the_body_shows(
    service: NotificationService,
) -> None:
    """Only the subject is one header line; a value used in the bodies alone may break lines."""
    result = await service.send(
        email(
            subject="",
            body_text="",
            template="usage_limit_warning",
            template_data={"metric": "projects", "used": "8", "limit": "10", "plan": "a\nb"},
        ),
        caller=SENDER,
    )
    assert "a\nb" in result.notification.body


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (email(to="not-an-address"), "to"),
        (email(to="a@b.com\r\nBcc: x@y.com"), "to"),
        (email(subject=""), "subject"),
        (email(subject="two\nlines"), "subject"),
        (email(body_text=""), "body_text"),
        (email(template="usage_limit_reached"), "subject"),
        (email(subject="", body_text="", template="nope"), "template"),
        (email(subject="", body_text="", template="usage_limit_reached"), "template_data"),
        (
            email(
                subject="",
                body_text="",
                template="usage_limit_reached",
                template_data={"metric": "projects\r\nBcc: x@y.com", "used": "1", "limit": "1"},
            ),
            "template_data['metric']",
        ),
        (
            email(
                subject="",
                body_text="",
                template="usage_limit_warning",
                template_data={"metric": "p" * 990, "used": "1", "limit": "1"},
            ),
            "template_data",
        ),
        (email(key=""), "idempotency_key"),
        (email(key="has space"), "idempotency_key"),
        (SmsRequest(to="0151 123", body="x", idempotency_key="k"), "to"),
        (SmsRequest(to="+4915112345678", body="", idempotency_key="k"), "body"),
        (SmsRequest(to="+4915112345678", body="x" * 1601, idempotency_key="k"), "body"),
        (PushRequest(user_id="u", idempotency_key="k"), "title"),
        (PushRequest(user_id="", title="t", idempotency_key="k"), "user_id"),
        (PushRequest(user_id="u", title="t", data={"k": "v" * 1001}, idempotency_key="k"), "data"),
    ],
)
async def test_invalid_requests_name_the_offending_field(
    service: NotificationService,
    dispatcher: RecordingDispatcher,
    request_: EmailRequest | SmsRequest | PushRequest,
    field: str,
) -> None:
    """Bad input is INVALID_ARGUMENT naming the field, and nothing is stored or enqueued."""
    with pytest.raises(InvalidArgument) as caught:
        await service.send(request_, caller=SENDER)
    assert caught.value.field.startswith(field)
    assert dispatcher.dispatched == []


async def test_push_stores_title_body_device_and_data(service: NotificationService) -> None:
    """A push keeps what the provider needs to deliver it."""
    result = await service.send(
        PushRequest(
            user_id="user-1",
            device_token="device-abc",
            title="Build done",
            body="Your build finished",
            data={"build": "42"},
            idempotency_key="push-1",
        ),
        caller=SENDER,
    )
    row = await service.get(result.notification.id)
    assert (row.channel, row.recipient, row.subject, row.data) == (
        "push",
        "device-abc",
        "Build done",
        {"build": "42"},
    )
