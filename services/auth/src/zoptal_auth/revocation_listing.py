"""ListRevocations: the live revocations, page by page, for verifiers in other services.

Verifiers (meshcore ``RevocationFeed``) poll every second or so with the cursor of their last
answer. A cursor is ``<since>.<after_seq>.<scan_start>`` (milliseconds, row id, milliseconds):
a scan returns the rows revoked after ``since`` in ``seq`` order, ``PAGE_SIZE`` at a time; when a
scan ends, the next one starts ``SYNC_OVERLAP_SECONDS`` before this one began, because a
transaction may commit a row (with an older ``revoked_at`` and a lower ``seq``) after a later
one was read. Repeated entries are harmless to a set. An empty cursor means "everything live".

A refresh family is listed as a session revocation (``sid``) that ends one access-token lifetime
(plus leeway) after it was revoked: no access token of a revoked family is issued afterwards, so
that is when the last one expires. This keeps the list small: logouts otherwise stay for 30 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from meshcore.db import Database
from meshcore.errors import InvalidArgument
from meshcore.timeutil import from_unix

from zoptal_auth import repository
from zoptal_auth.revocation import ACCESS_TOKEN, REFRESH_FAMILY, SYNC_OVERLAP_SECONDS

__all__ = ["PAGE_SIZE", "RevocationListing", "RevocationsPage", "RevokedItem"]

PAGE_SIZE = 1_000
MAX_CURSOR_LENGTH = 128
MAX_CURSOR_MS = 253_402_300_799_999  # the last millisecond of year 9999
MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class RevokedItem:
    token_id: str
    session_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class RevocationsPage:
    items: list[RevokedItem]
    next_cursor: str
    has_more: bool


@dataclass(frozen=True, slots=True)
class _Cursor:
    since_ms: int
    after_seq: int
    scan_start_ms: int  # 0 between scans

    def encode(self) -> str:
        return f"{self.since_ms}.{self.after_seq}.{self.scan_start_ms}"

    @classmethod
    def decode(cls, text: str) -> _Cursor:
        if not text:
            return cls(0, 0, 0)
        parts = text.split(".")
        if len(text) > MAX_CURSOR_LENGTH or len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise InvalidArgument("cursor", "is not a cursor this service issued")
        since_ms, after_seq, scan_start_ms = (int(part) for part in parts)
        # Digits alone are not enough: a time past year 9999 or a row id past 64 bits cannot
        # come from us, and would overflow the datetime or the SQL integer they are turned into.
        if max(since_ms, scan_start_ms) > MAX_CURSOR_MS or after_seq > MAX_ROW_ID:
            raise InvalidArgument("cursor", "is not a cursor this service issued")
        return cls(since_ms, after_seq, scan_start_ms)


class RevocationListing:
    """Answers ListRevocations from the ``revocations`` table (indexed by ``revoked_at``)."""

    def __init__(self, database: Database, *, access_ttl: float, leeway: float) -> None:
        self._database = database
        self._family_window = access_ttl + leeway

    async def page(self, cursor: str, now: float) -> RevocationsPage:
        position = _Cursor.decode(cursor)
        scan_start_ms = position.scan_start_ms or int(now * 1000)
        async with self._database.session() as session:
            rows = await repository.revocation_page(
                session,
                since=from_unix(position.since_ms / 1000),
                after_seq=position.after_seq,
                now=from_unix(now),
                family_kind=REFRESH_FAMILY,
                family_cutoff=from_unix(now - self._family_window),
                limit=PAGE_SIZE + 1,
            )
        has_more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        items = [
            self._item(kind, value, expires_at, revoked_at)
            for _, kind, value, expires_at, revoked_at in rows
        ]
        if has_more:
            following = _Cursor(position.since_ms, rows[-1][0], scan_start_ms)
        else:
            overlap_ms = int(SYNC_OVERLAP_SECONDS * 1000)
            following = _Cursor(max(scan_start_ms - overlap_ms, 0), 0, 0)
        return RevocationsPage(items, following.encode(), has_more)

    def _item(
        self, kind: str, value: str, expires_at: datetime, revoked_at: datetime
    ) -> RevokedItem:
        if kind == ACCESS_TOKEN:
            return RevokedItem(value, "", expires_at.timestamp())
        end = min(expires_at.timestamp(), revoked_at.timestamp() + self._family_window)
        return RevokedItem("", value, end)
