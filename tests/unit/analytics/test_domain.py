"""zoptal_analytics.domain: an event's validation (the proto's rules), each refusal naming its
field."""

from __future__ import annotations

import pytest
from meshcore.errors import InvalidArgument
from zoptal_analytics.domain import EventInput, PageInput, validate_event
from zoptal_analytics.realtime import MINUTE_MS

from .conftest import CALLER, NOW_MS


def test_a_valid_event_gets_a_server_id_and_the_receive_time() -> None:
    """No id and no timestamp: the server assigns both."""
    stored = validate_event(
        EventInput(name="signup", anonymous_id="dev-1"), now_ms=NOW_MS, caller=CALLER
    )
    assert stored.event_id
    assert stored.occurred_at_ms == stored.received_at_ms == NOW_MS
    assert stored.actor == "a:dev-1"


def test_a_page_view_keeps_its_page_fields() -> None:
    """Page views are events named page_view with url, title and referrer."""
    stored = validate_event(
        EventInput(
            name="page_view",
            user_id="u1",
            page=PageInput("https://z.io/p", "Pricing", "https://search.example/"),
        ),
        now_ms=NOW_MS,
        caller=CALLER,
    )
    assert (stored.page_url, stored.page_title, stored.referrer, stored.actor) == (
        "https://z.io/p",
        "Pricing",
        "https://search.example/",
        "u:u1",
    )


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (EventInput(name="x"), "user_id"),
        (EventInput(name="bad name", user_id="u"), "name"),
        (EventInput(name="", user_id="u"), "name"),
        (EventInput(name="page_view", user_id="u"), "name"),
        (EventInput(name="x", user_id="u", page=PageInput("https://a.b")), "name"),
        (EventInput(name="x", user_id="u", event_id="has space"), "event_id"),
        (EventInput(name="x", user_id="u" * 65), "user_id"),
        (
            EventInput(name="x", user_id="u", properties={f"k{i}": "v" for i in range(51)}),
            "properties",
        ),
        (EventInput(name="x", user_id="u", properties={"k": "v" * 1025}), "properties"),
        (EventInput(name="x", user_id="u", timestamp_ms=NOW_MS + 6 * MINUTE_MS), "timestamp"),
        (
            EventInput(name="x", user_id="u", timestamp_ms=NOW_MS - 31 * 24 * 60 * MINUTE_MS),
            "timestamp",
        ),
        (EventInput(name="page_view", user_id="u", page=PageInput("/relative")), "page.url"),
        (EventInput(name="page_view", user_id="u", page=PageInput("ftp://a.b/x")), "page.url"),
        # urlsplit itself refuses an unclosed IPv6 bracket (was INTERNAL, found by edge fuzzing)
        (EventInput(name="page_view", user_id="u", page=PageInput("http://[::1")), "page.url"),
        (
            EventInput(
                name="page_view", user_id="u", page=PageInput("https://a.b", referrer="http://[")
            ),
            "page.referrer",
        ),
    ],
)
def test_invalid_events_name_the_field(event: EventInput, field: str) -> None:
    """Each rule of the proto is enforced with the field named; a batch names it within."""
    with pytest.raises(InvalidArgument) as caught:
        validate_event(event, now_ms=NOW_MS, caller=CALLER)
    assert caught.value.field.startswith(field)
    assert caught.value.within("events[3]").field.startswith(f"events[3].{field}")
