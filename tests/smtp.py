"""A real SMTP server (aiosmtpd) for tests whose Celery workers deliver email to it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiosmtpd.controller import Controller

from tests.support import free_port

__all__ = ["SmtpSink", "listening"]

Sink = TypeVar("Sink", bound="SmtpSink")


@dataclass
class SmtpSink:
    """Records accepted messages. ``reply`` makes every DATA answer with that SMTP reply;
    ``hold`` parks the next DATA (the client is then mid-delivery) until ``release``."""

    port: int = 0
    messages: list[bytes] = field(default_factory=list)
    reply: str | None = None
    hold: bool = False
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    attempts: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.hold:
            self.hold = False
            self.held.set()
            await asyncio.to_thread(self.released.wait)
            # The client was killed while we held it: it never gets to hear an answer, and
            # we do not take responsibility for a message we never acknowledged.
            return "451 4.3.0 connection lost before acceptance"
        if self.reply is not None:
            return self.reply
        self.messages.append(bytes(envelope.original_content or envelope.content))
        return "250 2.0.0 accepted"


@contextlib.contextmanager
def listening(sink: Sink) -> Iterator[Sink]:
    """``sink`` listening on a free loopback port (``sink.port``) until the block ends."""
    sink.port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        sink.released.set()  # a held delivery must not keep the server from stopping
        controller.stop()
