"""Email over SMTP (Mailpit in compose, any relay in production), with smtplib on a thread."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from meshcore.settings import Secret

from zoptal_notification.providers.base import DeliveryError, OutgoingMessage

__all__ = ["SmtpProvider", "message_id_for"]


def message_id_for(notification_id: str) -> str:
    """A stable Message-ID, so a receiving system can recognise a redelivered copy."""
    return f"<{notification_id}@notification.zoptal>"


def _is_transient(code: int) -> bool:
    return 400 <= code < 500


class SmtpProvider:
    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        timeout: float,
        starttls: bool = False,
        username: str | None = None,
        password: Secret | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._timeout = timeout
        self._starttls = starttls
        self._username = username
        self._password = password

    def build(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = message_id_for(message.notification_id)
        email.set_content(message.body or "This message has an HTML body only.")
        if message.body_html:
            email.add_alternative(message.body_html, subtype="html")
        return email

    async def send(self, message: OutgoingMessage) -> str:
        email = self.build(message)
        await asyncio.to_thread(self._send_blocking, email)
        return str(email["Message-ID"])

    def _send_blocking(self, email: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username and self._password is not None:
                    smtp.login(self._username, self._password.reveal())
                refused = smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            reply = "; ".join(f"{code} {text!r}" for code, text in exc.recipients.values())
            raise DeliveryError(
                f"smtp recipient refused: {reply}", transient=all(map(_is_transient, codes))
            ) from exc
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
            raise DeliveryError(
                f"smtp {exc.smtp_code} {text}", transient=_is_transient(exc.smtp_code)
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Connection refused, reset, timed out, or the server hung up: try again later.
            raise DeliveryError(
                f"smtp {self._host}:{self._port} unreachable: {type(exc).__name__}: {exc}",
                transient=True,
            ) from exc
        if refused:
            raise DeliveryError(f"smtp recipient refused: {refused}", transient=False)

    async def close(self) -> None:
        """Nothing to close: each delivery uses its own connection."""
        return None
