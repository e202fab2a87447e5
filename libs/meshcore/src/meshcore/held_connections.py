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
With ``max_connections``, uses beyond that many wait for a held connection instead (in arrival
order): many concurrent readers then share a few connections and never queue at the pool,
which a connection they hold would never return to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
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
        self,
        database: Database,
        *,
        max_idle_seconds: float = 30.0,
        max_connections: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if database.dialect != "postgresql":
            raise ValueError("held driver connections are for PostgreSQL (asyncpg)")
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be 1 or more")
        self._database = database
        self._max_idle = max_idle_seconds
        self._limit = max_connections
        self._clock = clock
        self._idle: list[_Held] = []  # most recently used last
        self._taken = 0  # connections out of the pool: held idle or in use (or being opened)
        # Uses waiting for a connection (only with max_connections): each gets a held
        # connection handed over, or None, the right to open one in place of a released one.
        self._waiters: deque[asyncio.Future[_Held | None]] = deque()
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
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_exception(RuntimeError("HeldDriverConnections is closed"))
        while self._idle:
            await self._release(self._idle.pop(), invalidate=False)

    async def _take(self) -> _Held:
        while True:
            now = self._clock.monotonic()
            while self._idle:
                held = self._idle.pop()
                if held.driver.is_closed():
                    await self._release(held, invalidate=True)
                elif now - held.last_used > self._max_idle:
                    await self._release(held, invalidate=False)
                else:
                    return held
            if self._limit is None or self._taken < self._limit:
                self._taken += 1
                break
            handed = await self._wait_for_turn()
            if handed is None:
                break  # the slot of a released connection: open one in its place
            if not handed.driver.is_closed():
                return handed
            await self._release(handed, invalidate=True)
        try:
            connection = await self._database.engine.connect()  # checked by the pool
            pooled = await connection.get_raw_connection()
        except BaseException as exc:
            self._give_back_slot()
            unavailable = unavailable_from(exc) if isinstance(exc, Exception) else None
            if unavailable is not None:
                raise unavailable from exc
            raise
        return _Held(connection, pooled.driver_connection, now)

    async def _wait_for_turn(self) -> _Held | None:
        """A held connection another use hands over, or None: the slot of one that was
        released, to open a new connection in."""
        turn: asyncio.Future[_Held | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            return await turn
        except BaseException:
            if not turn.done():
                self._waiters.remove(turn)
            elif not turn.cancelled() and turn.exception() is None:
                # Handed over just as the wait was cancelled: pass it on.
                handed = turn.result()
                if handed is None:
                    self._give_back_slot()
                else:
                    await self._keep(handed)
            raise

    def _hand_over(self, held: _Held | None) -> bool:
        """Give ``held`` (or a free slot) to the longest waiting use; False if none waits."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(held)
                return True
        return False

    def _give_back_slot(self) -> None:
        if not self._hand_over(None):
            self._taken -= 1

    async def _keep(self, held: _Held) -> None:
        if self._closed:  # closed while this use was running
            await self._release(held, invalidate=False)
            return
        held.last_used = self._clock.monotonic()
        if not self._hand_over(held):
            self._idle.append(held)

    async def _release(self, held: _Held, *, invalidate: bool) -> None:
        """Back to the pool; an invalidated connection is closed instead of reused."""
        try:
            if invalidate:
                await held.connection.invalidate()
            await held.connection.close()
        except Exception as exc:  # the connection is already gone; nothing else to do
            logger.debug("closing a held connection failed: %s", type(exc).__name__)
        finally:
            self._give_back_slot()
