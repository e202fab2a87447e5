"""The in-memory revocation view: immediate locally, polled, never trusted blindly."""

from __future__ import annotations

import pytest
from meshcore.db import Database
from meshcore.errors import Unavailable
from meshcore.testing import FakeClock
from zoptal_auth.revocation import ACCESS_TOKEN, REFRESH_FAMILY, RevocationList


async def test_without_any_view_an_unreachable_database_is_unavailable():
    """With nothing ever loaded and no database, the answer is UNAVAILABLE, not 'valid'."""
    database = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none", connect_timeout=1)
    revocations = RevocationList(database, clock=FakeClock())
    try:
        with pytest.raises(Unavailable):
            await revocations.is_revoked(token_id="j1", session_id=None)
    finally:
        await database.dispose()


async def test_local_revocations_apply_at_once_and_lapse_with_their_tokens(app, clock):
    """remember() takes effect immediately and stops mattering once the token has expired."""
    revocations = app.revocations
    now = clock.time()
    revocations.remember(ACCESS_TOKEN, "j1", now + 60)
    revocations.remember(REFRESH_FAMILY, "f1", now + 600)
    assert await revocations.is_revoked(token_id="j1", session_id=None)
    assert await revocations.is_revoked(token_id="other", session_id="f1")
    assert not await revocations.is_revoked(token_id="j2", session_id="f2")
    clock.advance(61)
    assert not await revocations.is_revoked(token_id="j1", session_id=None)
