"""Notification unit fixtures: a real SQLite database per test, a fake clock, fake edges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.testing import FakeClock
from zoptal_notification.models import Base
from zoptal_notification.service import NotificationService

SENDER = "service:billing"
"""The caller scope sends are made under unless a test says otherwise."""


class RecordingDispatcher:
    """Remembers what was enqueued; ``fail`` makes it behave like a broker that is down."""

    def __init__(self) -> None:
        self.dispatched: list[str] = []
        self.fail = False

    async def dispatch(self, notification_id: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.dispatched.append(notification_id)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'notification.db'}")
    await db.create_all(Base.metadata)
    yield db
    await db.dispose()


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def service(
    database: Database, dispatcher: RecordingDispatcher, clock: FakeClock
) -> NotificationService:
    return NotificationService(
        database, dispatcher, dispatch_grace=10.0, redispatch_after=300.0, clock=clock
    )
