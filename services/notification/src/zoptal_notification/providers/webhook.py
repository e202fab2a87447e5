"""SMS and push through an HTTP webhook (a gateway such as Twilio's or an internal relay)."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from meshcore.settings import Secret

from zoptal_notification.providers.base import DeliveryError, OutgoingMessage

__all__ = ["WebhookProvider"]


class WebhookProvider:
    """POSTs the message as JSON. 2xx is delivered; 408, 429 and 5xx are retried; other 4xx
    fail at once. ``Idempotency-Key`` is the notification id, so a gateway can drop the copy a
    lost reply makes us send again."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float,
        secret: Secret | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def send(self, message: OutgoingMessage) -> str:
        payload = {
            "id": message.notification_id,
            "channel": message.channel,
            "to": message.recipient,
            "user_id": message.user_id,
            "title": message.subject,
            "body": message.body,
            "data": dict(message.data),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.notification_id}
        if self._secret is not None:
            digest = hmac.new(self._secret.reveal().encode(), body, hashlib.sha256).hexdigest()
            headers["X-Zoptal-Signature"] = f"sha256={digest}"
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise DeliveryError(
                f"{self.name} webhook unreachable: {type(exc).__name__}", transient=True
            ) from exc
        if response.is_success:
            return _provider_id(response) or message.notification_id
        transient = response.status_code in (408, 429) or response.status_code >= 500
        raise DeliveryError(
            f"{self.name} webhook answered HTTP {response.status_code}: {response.text[:200]}",
            transient=transient,
        )

    async def close(self) -> None:
        await self._client.aclose()


def _provider_id(response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return ""
    if isinstance(document, dict) and isinstance(document.get("id"), str | int):
        return str(document["id"])
    return ""
