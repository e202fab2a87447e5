"""Mutations that end the same way whether or not their caller waits for them.

grpc.aio cancels a handler's task when its client's deadline passes or the client cancels. A
mutation of several steps (write a row, call Billing, write again) cancelled between two of them
leaves a half-done state behind: a row that holds a name, a usage Billing counted for nothing,
and a retry that finds the first attempt "still in progress". ``Completions.run`` runs such work
in a task of its own, shielded from the call's cancellation: the work finishes (or rolls itself
back) on the server, and its result goes to the caller if the caller is still there.

The work runs in a copy of the call's context (principal, request id, trace) *without* the
call's deadline: downstream calls use their own budgets, so a client that gave up after 4 ms
does not turn every step after that into DEADLINE_EXCEEDED. Work started with a ``key`` can be
found while it runs (``running(key)``), so a retry of the same request waits for the first
attempt instead of racing or refusing it. ``drain()`` waits for everything still running (on
shutdown, before the database closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Hashable
from typing import Any, TypeVar

from meshcore.context import detached_context
from meshcore.errors import MeshError

__all__ = ["Completions"]

T = TypeVar("T")

_log = logging.getLogger("meshcore.completion")


class Completions:
    """Work that runs to its end whatever happens to the call that started it."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._by_key: dict[Hashable, asyncio.Task[Any]] = {}

    async def run(self, work: Coroutine[Any, Any, T], *, key: Hashable | None = None) -> T:
        """Run ``work`` to completion even if this call is cancelled; return its result (or
        raise its error) while the caller waits. With ``key``, ``running(key)`` finds it (unless
        an earlier piece of work with that key still runs: that one is found)."""
        task = self.start(work, key=key)
        return await asyncio.shield(task)

    def start(
        self, work: Coroutine[Any, Any, T], *, key: Hashable | None = None
    ) -> asyncio.Task[T]:
        """Start ``work`` without waiting for it (its failure is logged, not raised)."""
        task = asyncio.get_running_loop().create_task(work, context=detached_context())
        self._tasks.add(task)
        if key is not None and self.running(key) is None:
            self._by_key[key] = task  # the first attempt stays the one retries wait for
        task.add_done_callback(lambda done: self._finished(done, key))
        return task

    def running(self, key: Hashable) -> asyncio.Task[Any] | None:
        """The unfinished work started with ``key``, if any (in this process)."""
        task = self._by_key.get(key)
        return task if task is not None and not task.done() else None

    async def drain(self) -> None:
        """Wait for every piece of work still running (their errors are already logged)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def finish(self, seconds: float = 5.0) -> None:
        """On shutdown: ``drain()`` for at most ``seconds``, then cancel what still runs."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.drain()

    def _finished(self, task: asyncio.Task[Any], key: Hashable | None) -> None:
        self._tasks.discard(task)
        if key is not None and self._by_key.get(key) is task:
            del self._by_key[key]
        if task.cancelled():
            return
        error = task.exception()  # retrieved, so asyncio does not warn about it
        # Domain errors (a limit, a conflict) are the work's normal answers, not failures.
        if error is not None and not isinstance(error, MeshError):
            _log.warning("detached work failed: %s", error, exc_info=error)
