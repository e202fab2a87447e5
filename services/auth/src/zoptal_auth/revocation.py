"""This replica's view of revoked access tokens and refresh families.

ValidateToken must not cost a database round trip per call (it is the platform's hottest RPC),
so revocations live in memory: those made here are known at once, those made by other replicas
arrive by polling the ``revocations`` table at most every ``sync_interval`` seconds. A poll
re-reads an overlap window, because a transaction that started earlier may commit later.

While the database cannot be polled the last view is used, but only up to ``max_staleness``:
after that, ``Unavailable`` is raised instead of trusting a view that may have missed a revocation.
"""

from __future__ import annotations

import asyncio
import logging

from meshcore.clock import Clock
from meshcore.context import Principal
from meshcore.db import Database
from meshcore.errors import MeshError, Unavailable
from meshcore.revocation import RevocationListNotReady
from meshcore.timeutil import from_unix

from zoptal_auth import repository

__all__ = ["ACCESS_TOKEN", "REFRESH_FAMILY", "RevocationList", "RevocationListCheck"]

logger = logging.getLogger(__name__)

ACCESS_TOKEN = "access_token"  # noqa: S105 - a kind of revocation, not a secret
REFRESH_FAMILY = "refresh_family"
SYNC_OVERLAP_SECONDS = 60.0
PURGE_INTERVAL_SECONDS = 3600.0


class RevocationList:
    def __init__(
        self,
        database: Database,
        *,
        clock: Clock,
        sync_interval: float = 1.0,
        max_staleness: float = 30.0,
    ) -> None:
        self._database = database
        self._clock = clock
        self._sync_interval = sync_interval
        self._max_staleness = max(max_staleness, sync_interval)
        self._revoked: dict[tuple[str, str], float] = {}
        self._synced_at: float | None = None  # monotonic time of the last successful poll
        self._synced_until: float = 0.0  # wall time the last poll covered
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._purged_at: float | None = None  # wall time of the last purge

    def remember(self, kind: str, value: str, expires_at: float) -> None:
        """Record a revocation made by this replica (already committed to the database)."""
        key = (kind, value)
        self._revoked[key] = max(expires_at, self._revoked.get(key, 0.0))

    async def is_revoked(self, *, token_id: str | None, session_id: str | None) -> bool:
        await self._sync_if_due()
        now = self._clock.time()
        for key in ((ACCESS_TOKEN, token_id), (REFRESH_FAMILY, session_id)):
            if key[1] is None:
                continue
            expires_at = self._revoked.get(key)  # type: ignore[arg-type]
            if expires_at is not None and expires_at > now:
                return True
        return False

    def is_revoked_now(self, *, token_id: str | None, session_id: str | None) -> bool:
        """``is_revoked`` without waiting, for the interceptor chain's hot path.

        A due refresh happens in the background. Without a trusted view (never synced, or older
        than ``max_staleness``) it raises ``RevocationListNotReady``: the caller may await a
        foreground poll (which raises ``Unavailable`` if the database cannot be reached).
        """
        age = self._age()
        if age is None or age >= self._max_staleness:
            raise RevocationListNotReady("revocation list is not synced", self._sync_if_due)
        if age >= self._sync_interval and self._background is None and not self._lock.locked():
            self._background = asyncio.create_task(self._poll(background=True))
        now = self._clock.time()
        for key in ((ACCESS_TOKEN, token_id), (REFRESH_FAMILY, session_id)):
            if key[1] is None:
                continue
            expires_at = self._revoked.get(key)  # type: ignore[arg-type]
            if expires_at is not None and expires_at > now:
                return True
        return False

    async def sync(self) -> None:
        """Fetch revocations made since the last poll (minus the overlap) and drop expired ones."""
        started_wall = self._clock.time()
        since = from_unix(max(self._synced_until - SYNC_OVERLAP_SECONDS, 0.0))
        async with self._database.session() as session:
            rows = await repository.revocations_since(session, since, from_unix(started_wall))
        for kind, value, expires_at in rows:
            self.remember(kind, value, expires_at.timestamp())
        self._revoked = {k: exp for k, exp in self._revoked.items() if exp > started_wall}
        self._synced_until = started_wall
        self._synced_at = self._clock.monotonic()
        await self._purge_if_due(started_wall)

    async def _purge_if_due(self, now: float) -> None:
        """Housekeeping rides on the poll: once an hour, drop rows that can no longer matter."""
        if self._purged_at is not None and now - self._purged_at < PURGE_INTERVAL_SECONDS:
            return
        self._purged_at = now
        before = from_unix(now - SYNC_OVERLAP_SECONDS)
        async with self._database.session() as session:
            purged = await repository.purge_expired(session, before)
        if purged:
            logger.info("purged %d expired revocations and refresh families", purged)

    async def _sync_if_due(self) -> None:
        age = self._age()
        if age is not None and age < self._sync_interval:
            return
        if age is not None and age < self._max_staleness:
            # The view is old enough to refresh but still trusted: refresh in the background
            # so no call waits for the database.
            if not self._lock.locked() and self._background is None:
                self._background = asyncio.create_task(self._poll(background=True))
            return
        await self._poll(background=False)

    def _age(self) -> float | None:
        return None if self._synced_at is None else self._clock.monotonic() - self._synced_at

    async def _poll(self, *, background: bool) -> None:
        try:
            async with self._lock:
                age = self._age()
                if age is not None and age < self._sync_interval:
                    return
                try:
                    await self.sync()
                except (MeshError, OSError) as error:
                    if not background:
                        raise Unavailable.of_dependency(
                            "database", "revocation list unavailable"
                        ) from error
                    logger.warning(
                        "revocation poll failed (%s); the view is %.1fs old",
                        type(error).__name__,
                        age or 0.0,
                    )
        finally:
            if background:
                self._background = None

    async def close(self) -> None:
        """Wait for a background poll to finish (on shutdown, before the database closes)."""
        if self._background is not None:
            await asyncio.gather(self._background, return_exceptions=True)


class RevocationListCheck:
    """This replica's ``RevocationList`` as meshcore's ``RevocationCheck`` (Auth's own chain)."""

    def __init__(self, revocations: RevocationList) -> None:
        self._revocations = revocations

    def is_revoked(self, principal: Principal) -> bool:
        token_id = principal.claims.get("jti")
        session_id = principal.claims.get("sid")
        if token_id is None and session_id is None:
            return False  # nothing could name this token in a revocation
        return self._revocations.is_revoked_now(
            token_id=token_id if isinstance(token_id, str) else None,
            session_id=session_id if isinstance(session_id, str) else None,
        )
