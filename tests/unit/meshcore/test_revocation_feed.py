"""RevocationFeed: polling, expiry pruning, staleness (fail closed or open) and backoff."""

from __future__ import annotations

import asyncio

import pytest
from meshcore.context import Principal
from meshcore.errors import Unavailable
from meshcore.revocation import RevocationFeed, RevocationPage, RevokedEntry
from meshcore.testing import FakeClock


class FakeIssuer:
    """Serves revocations page by page from a list; the cursor is the index reached."""

    def __init__(self, page_size: int = 100) -> None:
        self.entries: list[RevokedEntry] = []
        self.page_size = page_size
        self.cursors: list[str] = []
        self.failing = False

    async def fetch(self, cursor: str) -> RevocationPage:
        self.cursors.append(cursor)
        if self.failing:
            raise ConnectionError("auth is down")
        start = int(cursor or 0)
        end = min(start + self.page_size, len(self.entries))
        return RevocationPage(self.entries[start:end], str(end), has_more=end < len(self.entries))


def _token(jti: str | None = None, sid: str | None = None) -> Principal:
    claims = {key: value for key, value in (("jti", jti), ("sid", sid)) if value is not None}
    return Principal(subject="user-1", kind="user", claims=claims)


def _feed(issuer: FakeIssuer, clock: FakeClock, **options: object) -> RevocationFeed:
    return RevocationFeed(issuer.fetch, clock=clock, **options)  # type: ignore[arg-type]


async def test_revoked_token_and_session_ids_are_known_after_a_sync() -> None:
    """A jti and a sid from the issuer are revoked; other tokens are not."""
    clock, issuer = FakeClock(), FakeIssuer()
    issuer.entries = [
        RevokedEntry("jti-1", None, clock.time() + 60),
        RevokedEntry(None, "sid-1", clock.time() + 60),
    ]
    feed = _feed(issuer, clock)
    await feed.sync()
    assert feed.is_revoked(_token(jti="jti-1"))
    assert feed.is_revoked(_token(jti="fresh", sid="sid-1"))
    assert not feed.is_revoked(_token(jti="fresh", sid="sid-2"))


async def test_a_sync_follows_pages_and_resumes_from_its_cursor() -> None:
    """Pages are fetched until has_more is false; the next sync starts at the cursor reached."""
    clock, issuer = FakeClock(), FakeIssuer(page_size=2)
    issuer.entries = [RevokedEntry(f"jti-{i}", None, clock.time() + 60) for i in range(5)]
    feed = _feed(issuer, clock)
    await feed.sync()
    assert issuer.cursors == ["", "2", "4"]
    assert all(feed.is_revoked(_token(jti=f"jti-{i}")) for i in range(5))
    issuer.entries.append(RevokedEntry("jti-5", None, clock.time() + 60))
    await feed.sync()
    assert issuer.cursors[-1] == "5"
    assert feed.is_revoked(_token(jti="jti-5"))


async def test_entries_are_dropped_once_their_tokens_have_expired() -> None:
    """After expires_at, a sync prunes the entry: the set does not grow forever."""
    clock, issuer = FakeClock(), FakeIssuer()
    issuer.entries = [
        RevokedEntry("short", None, clock.time() + 10),
        RevokedEntry("long", None, clock.time() + 100),
    ]
    feed = _feed(issuer, clock)
    await feed.sync()
    assert len(feed) == 2
    clock.advance(11)
    await feed.sync()
    assert len(feed) == 1
    assert feed.is_revoked(_token(jti="long"))


async def test_calls_fail_closed_until_the_first_sync() -> None:
    """Before any sync the view may miss a revocation: is_revoked raises Unavailable."""
    clock, issuer = FakeClock(), FakeIssuer()
    feed = _feed(issuer, clock)
    with pytest.raises(Unavailable, match="not synced"):
        feed.is_revoked(_token(jti="x"))
    await feed.sync()
    assert not feed.is_revoked(_token(jti="x"))


async def test_a_stale_view_fails_closed_after_max_staleness() -> None:
    """No successful sync for longer than max_staleness: Unavailable naming staleness."""
    clock, issuer = FakeClock(), FakeIssuer()
    feed = _feed(issuer, clock, max_staleness=60.0)
    await feed.sync()
    issuer.failing = True
    clock.advance(59)
    assert not await feed.poll_once()
    assert not feed.is_revoked(_token(jti="x"))
    clock.advance(2)
    with pytest.raises(Unavailable, match="revocation list is stale"):
        feed.is_revoked(_token(jti="x"))
    issuer.failing = False
    assert await feed.poll_once()
    assert not feed.is_revoked(_token(jti="x"))


async def test_fail_open_trusts_the_last_view_when_stale() -> None:
    """fail_mode='open': a stale (or never synced) view still answers from what it knows."""
    clock, issuer = FakeClock(), FakeIssuer()
    issuer.entries = [RevokedEntry("jti-1", None, clock.time() + 600)]
    feed = _feed(issuer, clock, max_staleness=60.0, fail_mode="open")
    assert not feed.is_revoked(_token(jti="jti-1"))  # nothing known yet, allowed
    await feed.sync()
    clock.advance(120)
    assert feed.is_revoked(_token(jti="jti-1"))
    assert not feed.is_revoked(_token(jti="other"))


async def test_before_the_first_sync_failures_are_retried_every_interval() -> None:
    """Calls wait for the first sync, so an issuer that is not up yet is asked every interval;
    backoff starts only once a sync has completed."""
    clock, issuer = FakeClock(), FakeIssuer()
    issuer.failing = True
    feed = _feed(issuer, clock, interval=1.0, max_backoff=10.0)
    delays = []
    for _ in range(4):
        await feed.poll_once()
        delays.append(feed.next_delay())
    assert delays == [1.0, 1.0, 1.0, 1.0]
    assert feed.consecutive_failures == 4
    issuer.failing = False
    await feed.poll_once()
    issuer.failing = True
    await feed.poll_once()
    assert feed.next_delay() == 2.0


async def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    """Once synced, delays double per consecutive failure (2, 4, 8, 10, 10, 10) and reset on
    success."""
    clock, issuer = FakeClock(), FakeIssuer()
    feed = _feed(issuer, clock, interval=1.0, max_backoff=10.0)
    await feed.poll_once()
    issuer.failing = True
    delays = []
    for _ in range(6):
        await feed.poll_once()
        delays.append(feed.next_delay())
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    issuer.failing = False
    await feed.poll_once()
    assert feed.next_delay() == 1.0
    assert feed.consecutive_failures == 0


async def test_the_background_poller_syncs_every_interval() -> None:
    """start() polls at once, then once per interval on the injected clock; stop() ends it."""
    clock, issuer = FakeClock(), FakeIssuer()
    feed = _feed(issuer, clock, interval=1.0)
    feed.start()
    for _ in range(10):
        await asyncio.sleep(0)
    assert issuer.cursors == [""]
    issuer.entries.append(RevokedEntry("late", None, clock.time() + 60))
    clock.advance(1.0)
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(issuer.cursors) == 2
    assert feed.is_revoked(_token(jti="late"))
    await feed.stop()
    clock.advance(5.0)
    await asyncio.sleep(0)
    assert len(issuer.cursors) == 2


async def test_a_local_revocation_applies_at_once() -> None:
    """add() (a revocation this process made itself) needs no poll."""
    clock, issuer = FakeClock(), FakeIssuer()
    feed = _feed(issuer, clock)
    await feed.sync()
    feed.add(RevokedEntry(None, "sid-9", clock.time() + 60))
    assert feed.is_revoked(_token(sid="sid-9"))


async def test_before_the_first_sync_the_error_says_how_to_wait_for_it() -> None:
    """The not-ready error carries wait_ready(), which resolves once the first sync completes."""
    from meshcore.revocation import RevocationListNotReady

    clock, issuer = FakeClock(), FakeIssuer()
    feed = _feed(issuer, clock)
    with pytest.raises(RevocationListNotReady) as raised:
        feed.is_revoked(_token(jti="x"))
    waiter = asyncio.ensure_future(raised.value.wait_ready())
    await asyncio.sleep(0)
    assert not waiter.done()
    await feed.sync()
    await asyncio.wait_for(waiter, 1.0)


async def test_tokens_no_revocation_could_name_need_no_view() -> None:
    """Without jti or sid (the seed's service tokens) the answer is False even when unsynced."""
    clock, issuer = FakeClock(), FakeIssuer()
    feed = _feed(issuer, clock)
    assert not feed.is_revoked(_token())
    with pytest.raises(Unavailable):
        feed.is_revoked(_token(jti="x"))


async def test_a_long_outage_keeps_the_capped_delay() -> None:
    """Past 1024 failures in a row 2.0**failures no longer fits a float: the delay stays capped
    and the poll still never raises."""
    clock, issuer = FakeClock(), FakeIssuer()
    feed = _feed(issuer, clock, interval=1.0, max_backoff=10.0)
    await feed.poll_once()
    issuer.failing = True
    for _ in range(1100):
        assert await feed.poll_once() is False
    assert feed.next_delay() == 10.0
