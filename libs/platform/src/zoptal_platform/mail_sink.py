"""A local SMTP server that keeps every message as a ``.eml`` file: the embedded mode's Mailpit.

The Notification worker delivers through real SMTP in every mode; on a laptop this sink is the
other end of that exchange, so emails can be read under ``<data dir>/mail`` without any account.
"""

from __future__ import annotations

import itertools
import os
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from meshcore.private_files import open_private, private_directory

__all__ = ["MailSink", "read_mailbox"]


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._sequence = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{next(self._sequence):06d}.eml"
        temporary = self._folder / f".{name}.part"
        # Written whole, then renamed: a reader never sees half a message. Private, since
        # messages carry password-reset and verification links.
        with os.fdopen(open_private(temporary, os.O_WRONLY | os.O_EXCL), "wb") as handle:
            handle.write(envelope.original_content or envelope.content)
        temporary.rename(self._folder / name)
        return "250 Message accepted for delivery"


class MailSink:
    """Runs in its own thread (aiosmtpd's Controller) for as long as the platform runs."""

    def __init__(self, folder: Path, port: int, host: str = "127.0.0.1") -> None:
        self.folder = private_directory(folder)
        self.port = port
        self._controller = Controller(_SaveToFolder(folder), hostname=host, port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def read_mailbox(folder: Path) -> list[Any]:
    """Every stored message, oldest first, parsed as ``email.message.EmailMessage``."""
    return [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in sorted(folder.glob("*.eml"))
    ]
