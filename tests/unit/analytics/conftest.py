"""Analytics unit helpers: event factories and a way to let the flusher task run."""

from __future__ import annotations

import itertools

from zoptal_analytics.domain import EventRecord

_ids = itertools.count()

NOW_MS = 1_700_000_000_000
CALLER = "service:project"
"""The caller scope events are written under unless a test says otherwise."""


def record(
    name: str = "project.created",
    *,
    user: str = "u1",
    at_ms: int = NOW_MS,
    event_id: str | None = None,
    url: str = "",
    title: str = "",
    caller: str = CALLER,
) -> EventRecord:
    return EventRecord(
        caller=caller,
        event_id=event_id or f"e{next(_ids)}",
        name=name,
        user_id=user,
        anonymous_id="",
        session_id="",
        occurred_at_ms=at_ms,
        received_at_ms=at_ms,
        properties={},
        page_url=url,
        page_title=title,
        referrer="",
    )
