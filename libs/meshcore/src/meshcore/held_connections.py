"""Driver connections that a busy writer keeps between uses instead of checking them out each time.

Taking a connection from the pool, pinging it and giving it back on every use costs over half a
millisecond of CPU, paid again for every batch by a writer that commits one every few
milliseconds (three times what the COPY of a small batch costs). A writer that holds its
connections skips all of that while it stays busy; it also reaches the driver's own connection
(asyncpg's), for what SQLAlchemy does not expose, such as COPY.

What the pool's ping protected against is handled here instead:

- a held connection the server has closed (a restart, an administrator) is noticed by the
  driver and replaced before use;
- one idle for ``max_idle_seconds`` goes back to the pool, and the next use takes a fresh,
  pinged one, so quiet periods never leave a stale connection behind (nor outlive idle
  timeouts of firewalls or PgBouncer);
- one that fails at connection level during a use is dropped, and the failure is
  ``Unavailable`` as with every other database call.

Each concurrent use holds its own connection, so ``n`` concurrent writers hold at most ``n``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database, unavailable_from

__all__ = ["HeldDriverConnections"]

logger = logging.getLogger(__name__)


@dataclass
class _Held:
    connection: AsyncConnection
    driver: Any
    last_used: float


class HeldDriverConnections:
    def __init__(
        self, database: Database, *, max_idle_seconds: float = 30.0, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        if database.dialect != "postgresql":
            raise ValueError("held driver connections are for PostgreSQL (asyncpg)")
        self._database = database
        self._max_idle = max_idle_seconds
        self._clock = clock
        self._idle: list[_Held] = []  # most recently used last
        self._closed = False

    @property
    def held(self) -> int:
        """Connections held and not in use."""
        return len(self._idle)

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Any]:
        """An asyncpg connection with no transaction open (each statement commits on its own);
        it is kept for the next use unless it failed at connection level. PostgreSQL only."""
        if self._closed:
            raise RuntimeError("HeldDriverConnections is closed")
        held = await self._take()
        try:
            yield held.driver
        except Exception as exc:
            unavailable = unavailable_from(exc)
            if unavailable is None:
                await self._keep(held)  # a failed statement leaves the connection usable
                raise
            await self._release(held, invalidate=True)
            raise unavailable from exc
        except BaseException:  # cancelled mid-use: the connection's state is unknown
            await self._release(held, invalidate=True)
            raise
        await self._keep(held)

    async def close(self) -> None:
        """Give every held connection back to the pool (before ``Database.dispose()``)."""
        self._closed = True
        while self._idle:
            await self._release(self._idle.pop(), invalidate=False)

    async def _take(self) -> _Held:
        now = self._clock.monotonic()
        while self._idle:
            held = self._idle.pop()
            if held.driver.is_closed():
                await self._release(held, invalidate=True)
            elif now - held.last_used > self._max_idle:
                await self._release(held, invalidate=False)
            else:
                return held
        try:
            connection = await self._database.engine.connect()  # pinged by the pool
            pooled = await connection.get_raw_connection()
        except Exception as exc:
            unavailable = unavailable_from(exc)
            if unavailable is not None:
                raise unavailable from exc
            raise
        return _Held(connection, pooled.driver_connection, now)

    async def _keep(self, held: _Held) -> None:
        if self._closed:  # closed while this use was running
            await self._release(held, invalidate=False)
            return
        held.last_used = self._clock.monotonic()
        self._idle.append(held)

    @staticmethod
    async def _release(held: _Held, *, invalidate: bool) -> None:
        """Back to the pool; an invalidated connection is closed instead of reused."""
        try:
            if invalidate:
                await held.connection.invalidate()
            await held.connection.close()
        except Exception as exc:  # the connection is already gone; nothing else to do
            logger.debug("closing a held connection failed: %s", type(exc).__name__)
