"""``RevocationFeed``: this process's copy of the issuer's revoked tokens, kept fresh by polling.

A JWT verifies offline, so a verifier learns that one was revoked only if someone tells it. The
feed keeps a local set of revoked token ids (``jti``) and session ids (``sid``, a login's
family: revoking it kills every access token issued under it), each kept until the tokens it
refers to have expired. ``is_revoked`` is a dictionary lookup: ``AuthInterceptor`` asks it on
every call, verified-token cache hits included.

The set is filled by polling an injected ``fetch(cursor) -> RevocationPage`` every ``interval``
seconds (the issuer's "revoked since cursor" API; pages are fetched until ``has_more`` is
false). Once synced, failures back off exponentially up to ``max_backoff``; before the first
sync they do not (calls are waiting for it, and a poll of an issuer that is not up yet costs a
refused connection). Staleness rule: until the first sync completes, or once ``max_staleness``
seconds pass without one, the view may be missing a revocation, so ``is_revoked`` raises
``Unavailable`` (fail closed) unless ``fail_mode="open"``, which trusts the last view and logs
the fact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import Principal
from meshcore.errors import Unavailable
from meshcore.reasons import Reason
from meshcore.tasks import cancel_and_wait
from meshcore.timeutil import backoff

__all__ = [
    "RevocationCheck",
    "RevocationFeed",
    "RevocationListNotReady",
    "RevocationPage",
    "RevokedEntry",
]

logger = logging.getLogger("meshcore.revocation")

FailMode = Literal["open", "closed"]
# A sync follows has_more at most this many pages before yielding to the next tick.
MAX_PAGES_PER_SYNC = 1_000


class RevocationListNotReady(Unavailable):
    """Raised by ``is_revoked`` while no view exists yet (before the first sync).

    ``AuthInterceptor`` then awaits ``wait_ready()`` (bounded) and asks again, so the calls that
    arrive while a server starts wait for the first sync instead of failing; if it still does
    not complete, the call fails closed with this error (UNAVAILABLE).
    """

    def __init__(self, message: str, wait_ready: Callable[[], Awaitable[object]]) -> None:
        super().__init__(
            message,
            reason=Reason.DEPENDENCY_UNAVAILABLE,
            metadata={"dependency": "auth"},
            retry_after=1.0,
        )
        self.wait_ready = wait_ready


class RevocationCheck(Protocol):
    """Asked by ``AuthInterceptor`` on every authenticated call: sync, local, O(1)."""

    def is_revoked(self, principal: Principal) -> bool:
        """True when the principal's token was revoked; may raise ``Unavailable`` when unsure."""
        ...


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    """One revocation: an access token (``token_id`` = ``jti``) and/or a session (``sid``)."""

    token_id: str | None
    session_id: str | None
    expires_at: float
    """Unix time after which every token this entry refers to has expired anyway."""


@dataclass(frozen=True, slots=True)
class RevocationPage:
    entries: Sequence[RevokedEntry]
    next_cursor: str
    has_more: bool = False


Fetch = Callable[[str], Awaitable[RevocationPage]]


class RevocationFeed:
    """Revoked ``jti``/``sid`` values, synced by polling ``fetch``; a ``RevocationCheck``."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        interval: float = 1.0,
        max_staleness: float = 60.0,
        fail_mode: FailMode = "closed",
        max_backoff: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if interval <= 0 or max_staleness <= 0:
            raise ValueError("interval and max_staleness must be positive")
        self._fetch = fetch
        self._interval = interval
        self._max_staleness = max(max_staleness, interval)
        self._fail_open = fail_mode == "open"
        self._max_backoff = max(max_backoff, interval)
        self._clock = clock
        self._tokens: dict[str, float] = {}
        self._sessions: dict[str, float] = {}
        self._cursor = ""
        self._synced_at: float | None = None  # monotonic start of the last complete sync
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self._warned_stale = False
        self._first_sync = asyncio.Event()

    # -- the check (hot path) -------------------------------------------------------------

    def is_revoked(self, principal: Principal) -> bool:
        claims = principal.claims
        token_id = claims.get("jti")
        session_id = claims.get("sid")
        if token_id is None and session_id is None:
            # Nothing could name this token in a revocation (e.g. the seed's HS256 service
            # tokens): no view is needed, so calls between services go on while Auth is away.
            return False
        if self._synced_at is None or (
            self._clock.monotonic() - self._synced_at > self._max_staleness
        ):
            self._on_stale()
        if token_id is not None and token_id in self._tokens:
            return True
        return session_id is not None and session_id in self._sessions

    def _on_stale(self) -> None:
        if not self._fail_open:
            if self._synced_at is None:
                raise RevocationListNotReady(
                    "revocation list is not synced yet", self._first_sync.wait
                )
            raise Unavailable.of_dependency(
                "auth", f"revocation list is stale (no sync for over {self._max_staleness:g}s)"
            )
        if not self._warned_stale:
            self._warned_stale = True
            logger.warning("revocation list is stale; failing open as configured")

    # -- state ----------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Whether at least one sync completed."""
        return self._synced_at is not None

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def __len__(self) -> int:
        return len(self._tokens) + len(self._sessions)

    def add(self, entry: RevokedEntry) -> None:
        """Remember one revocation (from a page, or made by this process itself)."""
        if entry.token_id:
            previous = self._tokens.get(entry.token_id, 0.0)
            self._tokens[entry.token_id] = max(entry.expires_at, previous)
        if entry.session_id:
            previous = self._sessions.get(entry.session_id, 0.0)
            self._sessions[entry.session_id] = max(entry.expires_at, previous)

    def prune(self) -> None:
        """Forget entries whose tokens have all expired (they fail verification on their own)."""
        now = self._clock.time()
        self._tokens = {key: exp for key, exp in self._tokens.items() if exp > now}
        self._sessions = {key: exp for key, exp in self._sessions.items() if exp > now}

    # -- syncing --------------------------------------------------------------------------

    async def sync(self) -> None:
        """Fetch every page since the cursor, then prune; raises what ``fetch`` raises."""
        started = self._clock.monotonic()
        for _ in range(MAX_PAGES_PER_SYNC):
            page = await self._fetch(self._cursor)
            for entry in page.entries:
                self.add(entry)
            self._cursor = page.next_cursor
            if not page.has_more:
                break
        else:
            # Still behind: what was merged stays, but the view is not yet complete.
            raise Unavailable.of_dependency("auth", "revocation list is still catching up")
        self.prune()
        self._synced_at = started
        self._warned_stale = False
        self._first_sync.set()

    def next_delay(self) -> float:
        """Seconds until the next poll: the interval, doubled per consecutive failure once a
        sync has completed (before that, every interval: calls are waiting for it)."""
        if self._failures == 0 or self._synced_at is None:
            return self._interval
        return backoff(self._failures + 1, self._interval, self._max_backoff)

    async def poll_once(self) -> bool:
        """One sync attempt, recorded for backoff; never raises (but for cancellation)."""
        try:
            await self.sync()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # any failure means "try again later"
            self._failures += 1
            logger.warning(
                "revocation sync failed (%s: %s); attempt %d, next in %.1fs",
                type(error).__name__,
                error,
                self._failures,
                self.next_delay(),
            )
            return False
        self._failures = 0
        return True

    async def run(self) -> None:
        """Poll forever (until cancelled)."""
        while True:
            await self.poll_once()
            await self._clock.sleep(self.next_delay())

    def start(self) -> None:
        """Start polling in the background (call from the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="meshcore-revocation-feed"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
