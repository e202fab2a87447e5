"""Incoming events as domain values, validated by the rules the proto documents."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from meshcore.errors import InvalidArgument

from zoptal_analytics.models import PAGE_VIEW

__all__ = ["EventInput", "EventRecord", "PageInput", "validate_event"]

_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_FUTURE_MS = 5 * 60 * 1000
MAX_PAST_MS = 30 * 24 * 60 * 60 * 1000


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which triples
# the cost of building one, and ingest builds two per event. Treat them as read-only anyway.


@dataclass(slots=True)
class PageInput:
    url: str
    title: str = ""
    referrer: str = ""


@dataclass(slots=True)
class EventInput:
    """What a client sent; ``timestamp_ms`` 0 means "when the server received it"."""

    name: str
    user_id: str = ""
    anonymous_id: str = ""
    event_id: str = ""
    properties: Mapping[str, str] = field(default_factory=dict)
    timestamp_ms: int = 0
    session_id: str = ""
    page: PageInput | None = None


@dataclass(slots=True)
class EventRecord:
    """A validated event, ready to store."""

    caller: str
    """Who sent it (``meshcore.idempotency.caller_scope``): ``event_id`` is unique per caller."""
    event_id: str
    name: str
    user_id: str
    anonymous_id: str
    session_id: str
    occurred_at_ms: int
    received_at_ms: int
    properties: Mapping[str, str]
    page_url: str
    page_title: str
    referrer: str
    actor: str = ""
    """``u:<user_id>`` or ``a:<anonymous_id>``: who "unique users" counts (set on creation)."""

    def __post_init__(self) -> None:
        if not self.actor:
            self.actor = f"u:{self.user_id}" if self.user_id else f"a:{self.anonymous_id}"

    def as_row(self) -> dict[str, object]:
        return {
            "caller": self.caller,
            "event_id": self.event_id,
            "name": self.name,
            "user_id": self.user_id,
            "anonymous_id": self.anonymous_id,
            "actor": self.actor,
            "session_id": self.session_id,
            "occurred_at_ms": self.occurred_at_ms,
            "received_at_ms": self.received_at_ms,
            "properties": dict(self.properties),
            "page_url": self.page_url,
            "page_title": self.page_title,
            "referrer": self.referrer,
        }


def _limit(field_name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(field_name, f"at most {limit} characters")


def _http_url(field_name: str, value: str) -> None:
    try:
        parts = urlsplit(value)
    except ValueError:  # urlsplit's own refusals, e.g. an unclosed IPv6 bracket "http://[::1"
        raise InvalidArgument(field_name, "expected an absolute http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(field_name, "expected an absolute http(s) URL")


def _check_properties(properties: Mapping[str, str]) -> None:
    if len(properties) > 50:
        raise InvalidArgument("properties", "at most 50 entries")
    for key, value in properties.items():
        if not 1 <= len(key) <= 128:
            raise InvalidArgument("properties", "keys are 1 to 128 characters")
        _limit(f"properties[{key!r}]", value, 1024)


def _check_identity(event: EventInput) -> None:
    if event.event_id and not _ID.fullmatch(event.event_id):
        raise InvalidArgument("event_id", "1 to 128 characters of [A-Za-z0-9._:-]")


def _check_actor(event: EventInput) -> None:
    if not event.user_id and not event.anonymous_id:
        raise InvalidArgument("user_id", "user_id or anonymous_id is required")
    _limit("user_id", event.user_id, 64)


def _check_anonymous_id(event: EventInput) -> None:
    _limit("anonymous_id", event.anonymous_id, 128)


def _check_name(event: EventInput) -> None:
    if not _NAME.fullmatch(event.name):
        raise InvalidArgument("name", "1 to 128 characters of [A-Za-z0-9_.:-]")
    if (event.name == PAGE_VIEW) != (event.page is not None):
        raise InvalidArgument("name", f"{PAGE_VIEW!r} is reserved for page views (with a page)")


def _check_properties_of(event: EventInput) -> None:
    if event.properties:
        _check_properties(event.properties)


def _check_session(event: EventInput) -> None:
    _limit("session_id", event.session_id, 128)


def _check_page_url(event: EventInput) -> None:
    if event.page is not None:
        _limit("page.url", event.page.url, 2048)
        _http_url("page.url", event.page.url)


def _check_page_title(event: EventInput) -> None:
    if event.page is not None:
        _limit("page.title", event.page.title, 512)


def _check_page_referrer(event: EventInput) -> None:
    page = event.page
    if page is not None:
        _limit("page.referrer", page.referrer, 2048)
        if page.referrer:
            _http_url("page.referrer", page.referrer)


# One check per field, independent of each other, so that a bad event is told every bad field
# at once. Plain calls in a loop, not meshcore.validation.Violations: ingest validates every
# event of every batch, and a context manager per check would cost more than the checks.
_CHECKS = (
    _check_identity,
    _check_actor,
    _check_anonymous_id,
    _check_name,
    _check_properties_of,
    _check_session,
    _check_page_url,
    _check_page_title,
    _check_page_referrer,
)


def validate_event(event: EventInput, *, now_ms: int, caller: str) -> EventRecord:
    """The stored form of ``event`` sent by ``caller`` (its ``caller_scope``); ``InvalidArgument``
    names every bad field within the event (callers checking a list use
    ``error.within("events[i]")``)."""
    found: list[InvalidArgument] = []
    for check in _CHECKS:
        try:
            check(event)
        except InvalidArgument as error:
            found.append(error)
    occurred = event.timestamp_ms or now_ms
    if not now_ms - MAX_PAST_MS <= occurred <= now_ms + MAX_FUTURE_MS:
        found.append(
            InvalidArgument("timestamp", "at most 5 minutes in the future and 30 days in the past")
        )
    if found:
        if len(found) == 1:
            raise found[0]
        raise InvalidArgument.of(violation for error in found for violation in error.violations)
    page = event.page
    return EventRecord(
        caller=caller,
        event_id=event.event_id or os.urandom(16).hex(),  # 128 random bits, cheaper than uuid4
        name=event.name,
        user_id=event.user_id,
        anonymous_id=event.anonymous_id,
        session_id=event.session_id,
        occurred_at_ms=occurred,
        received_at_ms=now_ms,
        properties=dict(event.properties) if event.properties else {},
        page_url=page.url if page else "",
        page_title=page.title if page else "",
        referrer=page.referrer if page else "",
    )
