"""Webhook and log providers, and the SMTP message they would hand to a server."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import httpx
import pytest
from meshcore.settings import Secret
from zoptal_notification.providers import LogProvider, SmtpProvider, WebhookProvider
from zoptal_notification.providers.base import DeliveryError, OutgoingMessage

MESSAGE = OutgoingMessage(
    notification_id="n-1",
    channel="sms",
    recipient="+4915112345678",
    user_id="u-1",
    body="Your code is 1234",
)


def _webhook(handler: httpx.MockTransport, secret: str | None = None) -> WebhookProvider:
    return WebhookProvider(
        "sms",
        "https://gateway.example/send",
        timeout=1.0,
        secret=Secret(secret) if secret else None,
        transport=handler,
    )


async def test_webhook_posts_signed_json_with_the_notification_as_idempotency_key() -> None:
    """The gateway gets the message, a stable Idempotency-Key and a verifiable signature."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"id": "gw-77"})

    provider = _webhook(httpx.MockTransport(handle), secret="s3cret")
    assert await provider.send(MESSAGE) == "gw-77"
    request = seen[0]
    body = json.loads(request.content)
    assert (body["to"], body["body"], body["id"]) == ("+4915112345678", "Your code is 1234", "n-1")
    assert request.headers["Idempotency-Key"] == "n-1"
    expected = hmac.new(b"s3cret", request.content, hashlib.sha256).hexdigest()
    assert request.headers["X-Zoptal-Signature"] == f"sha256={expected}"
    await provider.close()


@pytest.mark.parametrize(
    ("status", "transient"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False)],
)
async def test_webhook_errors_are_retried_only_when_they_may_pass(
    status: int, transient: bool
) -> None:
    """Server errors and throttling are transient; other client errors are permanent."""
    provider = _webhook(httpx.MockTransport(lambda _: httpx.Response(status, text="nope")))
    with pytest.raises(DeliveryError) as caught:
        await provider.send(MESSAGE)
    assert caught.value.transient is transient
    assert f"HTTP {status}" in caught.value.reason
    await provider.close()


async def test_an_unreachable_webhook_is_transient() -> None:
    """A connection error is worth another attempt."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    provider = _webhook(httpx.MockTransport(refuse))
    with pytest.raises(DeliveryError) as caught:
        await provider.send(MESSAGE)
    assert caught.value.transient
    await provider.close()


async def test_log_provider_masks_the_recipient(caplog: pytest.LogCaptureFixture) -> None:
    """Phone numbers never reach the log in full."""
    caplog.set_level(logging.INFO, logger="zoptal_notification.delivered")
    assert await LogProvider().send(MESSAGE) == "log:n-1"
    assert "+4915112345678" not in caplog.text
    assert "5678" in caplog.text


def test_smtp_message_has_a_stable_message_id_and_both_bodies() -> None:
    """The Message-ID derives from the notification, so receivers can spot a redelivery."""
    provider = SmtpProvider(host="localhost", port=25, sender="Zoptal <z@x.io>", timeout=1.0)
    email = provider.build(
        OutgoingMessage(
            notification_id="n-9",
            channel="email",
            recipient="ada@example.com",
            subject="Hi",
            body="text",
            body_html="<p>html</p>",
        )
    )
    assert email["Message-ID"] == "<n-9@notification.zoptal>"
    assert (email["To"], email["From"], email["Subject"]) == (
        "ada@example.com",
        "Zoptal <z@x.io>",
        "Hi",
    )
    assert email.get_content_type() == "multipart/alternative"


async def test_an_unreachable_smtp_server_is_transient() -> None:
    """Nothing listening on the port: retry later."""
    provider = SmtpProvider(host="127.0.0.1", port=1, sender="z@x.io", timeout=1.0)
    with pytest.raises(DeliveryError) as caught:
        await provider.send(
            OutgoingMessage(
                notification_id="n", channel="email", recipient="a@b.io", subject="s", body="b"
            )
        )
    assert caught.value.transient
