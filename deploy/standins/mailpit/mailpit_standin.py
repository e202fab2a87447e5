"""STAND-IN for axllent/mailpit, for machines that cannot reach an image registry.

Not Mailpit: an SMTP server on 1025 that keeps every message in memory, and on 8025 the part of
Mailpit's HTTP API the checks use:
  GET/HEAD /readyz, /livez          200
  GET  /api/v1/messages             {"total", "count", "messages": [summary, newest first]}
  GET  /api/v1/search?query=...     the same, filtered: to:ADDR, from:ADDR, subject:TEXT or TEXT
  GET  /api/v1/message/{ID}         one message: summary fields plus Text and HTML
  DELETE /api/v1/messages           delete every message
Summaries have Mailpit's field names (ID, MessageID, From{Name,Address}, To[...], Subject,
Created, Size, Snippet). Built by scripts/build_standin_images.sh; see deploy/standins/README.md.
"""

from __future__ import annotations

import json
import threading
import uuid
import warnings
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore
    import smtpd

lock = threading.Lock()
messages: list[dict[str, Any]] = []  # oldest first


def _addresses(value: str | None) -> list[dict[str, str]]:
    return [{"Name": name, "Address": address} for name, address in getaddresses([value or ""])]


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    return "" if part is None else str(part.get_content())


def store(data: bytes, rcpttos: list[str]) -> None:
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    text = _body(parsed, "plain")
    sender = _addresses(parsed["From"])
    entry = {
        "ID": uuid.uuid4().hex,
        "MessageID": str(parsed["Message-ID"] or "").strip("<>"),
        "Read": False,
        "From": sender[0] if sender else {"Name": "", "Address": ""},
        "To": _addresses(parsed["To"]) or [{"Name": "", "Address": a} for a in rcpttos],
        "Cc": _addresses(parsed["Cc"]) if parsed["Cc"] else [],
        "Bcc": [],
        "Subject": str(parsed["Subject"] or ""),
        "Created": datetime.now(UTC).isoformat(),
        "Size": len(data),
        "Snippet": " ".join(text.split())[:250],
        "Text": text,
        "HTML": _body(parsed, "html"),
    }
    with lock:
        messages.append(entry)


class Smtp(smtpd.SMTPServer):
    def process_message(
        self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes, **kwargs: Any
    ) -> None:
        store(data, rcpttos)


def _summary(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("Text", "HTML")}


def _matches(entry: dict[str, Any], query: str) -> bool:
    for term in query.split():
        field, _, value = term.partition(":")
        value = value.lower()
        if field == "to" and value:
            ok = any(value in a["Address"].lower() for a in entry["To"])
        elif field == "from" and value:
            ok = value in entry["From"]["Address"].lower()
        elif field == "subject" and value:
            ok = value in entry["Subject"].lower()
        else:
            ok = term.lower() in (entry["Subject"] + " " + entry["Text"]).lower()
        if not ok:
            return False
    return True


class Http(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header(
            "Content-Type", "text/plain" if isinstance(body, bytes) else "application/json"
        )
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        with lock:
            newest_first = list(reversed(messages))
        if url.path in ("/readyz", "/livez"):
            self._send(200, b"ok\n")
        elif url.path in ("/api/v1/messages", "/api/v1/search"):
            query = parse_qs(url.query).get("query", [""])[0]
            found = [m for m in newest_first if _matches(m, query)] if query else newest_first
            listed = [_summary(m) for m in found]
            self._send(
                200,
                {
                    "total": len(newest_first),
                    "unread": 0,
                    "count": len(listed),
                    "messages_count": len(listed),
                    "start": 0,
                    "messages": listed,
                },
            )
        elif url.path.startswith("/api/v1/message/"):
            wanted = unquote(url.path.rsplit("/", 1)[1])
            found = [m for m in newest_first if m["ID"] == wanted]
            if wanted == "latest" and newest_first:
                found = newest_first[:1]
            self._send(200, found[0]) if found else self._send(404, b"message not found\n")
        else:
            self._send(404, b"not found\n")

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path == "/api/v1/messages":
            with lock:
                messages.clear()
            self._send(200, b"ok\n")
        else:
            self._send(404, b"not found\n")


def main() -> None:
    http = ThreadingHTTPServer(("0.0.0.0", 8025), Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    Smtp(("0.0.0.0", 1025), None, decode_data=False)
    print("mailpit stand-in: SMTP 1025, API 8025", flush=True)
    asyncore.loop(timeout=1.0)


if __name__ == "__main__":
    main()
