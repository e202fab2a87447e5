"""The in-memory revocation view: immediate locally, polled, never trusted blindly."""

from __future__ import annotations

import pytest
from meshcore.context import Principal
from meshcore.db import Database
from meshcore.errors import Unavailable
from meshcore.revocation import RevocationListNotReady
from meshcore.testing import FakeClock
from zoptal_auth.revocation import (
    ACCESS_TOKEN,
    REFRESH_FAMILY,
    RevocationList,
    RevocationListCheck,
)


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


async def test_the_interceptor_check_waits_for_a_first_poll_then_answers_locally(app, clock):
    """RevocationListCheck: not ready before any poll; after one, jti and sid answer at once."""
    check = RevocationListCheck(app.revocations)
    principal = Principal("u1", "user", claims={"jti": "j9", "sid": "f9"})
    app.revocations.remember(REFRESH_FAMILY, "f9", clock.time() + 600)
    with pytest.raises(RevocationListNotReady) as not_ready:
        check.is_revoked(principal)
    await not_ready.value.wait_ready()
    assert check.is_revoked(principal)
    assert not check.is_revoked(Principal("u2", "user", claims={"jti": "j8", "sid": "f8"}))
