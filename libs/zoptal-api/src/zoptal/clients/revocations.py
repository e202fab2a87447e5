"""A ``meshcore.revocation.RevocationFeed`` fed by ``AuthService.ListRevocations``.

Every service but Auth builds one with its own ``GrpcClientManager`` (whose service token must
hold ``REVOCATION_READ``), starts it with the server and hands it to ``build_server_chain``
(``revocations=``), so a token revoked through Auth is refused everywhere within about
``REVOCATION_SYNC_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from meshcore.client_manager import GrpcClientManager
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.revocation import RevocationFeed, RevocationPage, RevokedEntry

from zoptal.clients.auth import AuthServiceClient

__all__ = ["REVOCATION_READ", "auth_revocation_feed"]

REVOCATION_READ = "revocation:read"
"""The permission ListRevocations demands of the caller's service token."""

FETCH_TIMEOUT_MS = 2_000.0


def auth_revocation_feed(
    clients: GrpcClientManager,
    settings: Any,
    *,
    clock: Clock = SYSTEM_CLOCK,
    timeout_ms: float = FETCH_TIMEOUT_MS,
    token_ready: Callable[[], Awaitable[object]] | None = None,
) -> RevocationFeed:
    """A feed polling Auth through ``clients`` every ``settings.revocation_sync_seconds``
    (not yet started; ``clients`` must carry a service token with ``REVOCATION_READ``).

    ``token_ready`` (the token source's ``wait_ready``) is awaited, for at most ``timeout_ms``,
    before each poll: started together with the token source, the first poll would otherwise go
    out before the service's first token and be refused (UNAUTHENTICATED, logged as a failed
    sync, retried an interval later) on every start.

    ``settings`` is a ``meshcore.settings.ServiceSettings``: its ``REVOCATION_*`` values give
    the interval, the staleness limit and the fail mode.
    """

    auth = AuthServiceClient(clients)

    async def fetch(cursor: str) -> RevocationPage:
        if token_ready is not None:
            with contextlib.suppress(TimeoutError):  # then poll anyway: Auth says what is wrong
                await asyncio.wait_for(token_ready(), timeout_ms / 1000.0)
        reply = await auth.list_revocations(cursor, timeout_ms=timeout_ms)
        return RevocationPage(
            [
                RevokedEntry(
                    token_id=entry.token_id or None,
                    session_id=entry.session_id or None,
                    expires_at=entry.expires_at.seconds + entry.expires_at.nanos / 1e9,
                )
                for entry in reply.revocations
            ],
            reply.next_cursor,
            reply.has_more,
        )

    return RevocationFeed(
        fetch,
        interval=settings.revocation_sync_seconds,
        max_staleness=settings.revocation_max_staleness_seconds,
        fail_mode=settings.revocation_fail_mode,
        clock=clock,
    )
