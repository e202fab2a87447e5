"""Argon2id hashing for passwords and client secrets, with bounded concurrency.

Hashing is deliberately slow (tens of milliseconds of one core, ``ARGON2_MEMORY_KIB`` of memory
each), so it runs in worker threads (argon2-cffi releases the GIL) and the event loop keeps
serving other calls meanwhile. Unbounded, a burst of logins would queue without end: every
queued login waits behind all the others and each running one holds its memory. So the work
goes through one ``HashingPool``: at most ``workers`` computations at once (one per core),
at most ``max_queue`` waiting, and at most ``max_per_client`` of both for one client (the real
caller, ``meshcore.interceptors.client_address``). Anything more is refused at once with
RESOURCE_EXHAUSTED and a retry delay instead of queueing. One client never runs on every worker
at once (with two workers or more, one stays for the others), and a freed worker goes to the
waiting client served longest ago (one with nothing in the pool counts as never served): a
client that floods cannot take every slot, and waits behind everyone else's single logins.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import secrets
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import ResourceExhausted

from zoptal_auth.reasons import AuthReason

__all__ = ["LOCAL_CLIENT", "HashingPool", "SecretHasher", "available_cpus"]

T = TypeVar("T")

LOCAL_CLIENT = "local"
"""The client of work no remote caller asked for (bootstrap, command-line tools)."""


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, not the whole host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class HashingPool:
    """Runs blocking computations on ``workers`` threads, admitting a bounded number of them.

    ``run`` raises ``ResourceExhausted`` at once when the call would have to wait and
    ``max_queue`` computations already do, or when ``client`` already holds ``max_per_client``
    computations, running or waiting. One client runs on at most ``workers - 1`` workers at
    once (when there are two or more), so a worker is free for anyone else as soon as they
    come. The memory it can hold is bounded by ``workers`` computations plus the requests
    waiting.
    """

    def __init__(
        self,
        workers: int,
        max_queue: int,
        max_per_client: int,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if workers <= 0 or max_queue < 0 or max_per_client <= 0:
            raise ValueError("workers and max_per_client must be positive, max_queue >= 0")
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="argon2")
        self._workers = workers
        self._max_queue = max_queue
        self._max_per_client = max_per_client
        self._running_share = max(1, workers - 1)
        self._clock = clock
        self._free = workers
        # client -> its waiting computations; per client, what it holds (running and waiting),
        # what it runs, and when it was last given a worker.
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._queued = 0
        self._held: Counter[str] = Counter()
        self._running: Counter[str] = Counter()
        self._served: dict[str, int] = {}
        self._turns = itertools.count()
        self._seconds = 0.05  # moving average of one computation, for the retry delay

    @property
    def busy(self) -> int:
        """Computations running now."""
        return self._workers - self._free

    @property
    def queued(self) -> int:
        """Computations admitted and waiting for a worker."""
        return self._queued

    async def run(self, client: str, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` on a worker thread, for ``client``; refused when over the bounds."""
        self._admit(client)
        self._held[client] += 1
        try:
            await self._slot(client)
            return await self._compute(client, function, args)
        finally:
            self._held[client] -= 1
            if not self._held[client]:
                del self._held[client]
                self._served.pop(client, None)  # nothing in the pool: first in line next time

    def refuse_if_full(self, client: str) -> None:
        """Raise now what ``run`` would raise for ``client`` if called now: for callers with
        work to do before the computation (a database read), so that a refusal costs none of
        it. Not a reservation: ``run`` checks again."""
        self._admit(client)

    def close(self) -> None:
        """Stop taking work; computations already running finish on their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self, client: str) -> None:
        if self._held[client] >= self._max_per_client:
            raise ResourceExhausted(
                "too many password checks in progress for this client",
                reason=AuthReason.HASHING_BUSY,
                retry_after=self._retry_after(),
            )
        if not self._may_start(client) and self._queued >= self._max_queue:
            raise ResourceExhausted(
                "the server is busy checking passwords",
                reason=AuthReason.HASHING_BUSY,
                retry_after=self._retry_after(),
            )

    def _may_start(self, client: str) -> bool:
        return self._free > 0 and self._running[client] < self._running_share

    def _retry_after(self) -> float:
        # Roughly when the work admitted now would be done.
        rounds = 1 + self._queued / self._workers
        return round(max(0.1, self._seconds * rounds), 3)

    async def _slot(self, client: str) -> None:
        if self._may_start(client):
            self._take(client)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(waiter)
        self._queued += 1
        try:
            await waiter  # _dispatch gives this call a worker, then wakes it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(client)  # given a worker as the call went away: pass it on
            else:
                self._forget(client, waiter)
            raise

    def _take(self, client: str) -> None:
        self._free -= 1
        self._running[client] += 1
        self._served[client] = next(self._turns)

    def _give_back(self, client: str) -> None:
        self._running[client] -= 1
        if not self._running[client]:
            del self._running[client]
        self._free += 1
        self._dispatch()

    def _dispatch(self) -> None:
        """Give free workers to waiting clients within their share, served longest ago first."""
        while self._free > 0:
            ready = [name for name in self._waiting if self._running[name] < self._running_share]
            if not ready:
                return
            client = min(ready, key=lambda name: self._served.get(name, -1))
            queue = self._waiting[client]
            waiter = queue.popleft()
            self._queued -= 1
            if not queue:
                del self._waiting[client]
            if not waiter.done():
                self._take(client)
                waiter.set_result(None)

    def _forget(self, client: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(client)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self._queued -= 1
            if not queue:
                del self._waiting[client]

    async def _compute(
        self, client: str, function: Callable[..., T], args: tuple[object, ...]
    ) -> T:
        loop = asyncio.get_running_loop()
        started = self._clock.monotonic()
        work: Future[T] = self._executor.submit(function, *args)

        def finished(_: Future[T]) -> None:
            # The worker is free only when the thread is done, even if the caller went away
            # before (a cancelled call cannot stop a running Argon2 computation).
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(self._finished, client, started)

        work.add_done_callback(finished)
        return await asyncio.wrap_future(work, loop=loop)

    def _finished(self, client: str, started: float) -> None:
        elapsed = self._clock.monotonic() - started
        self._seconds = 0.8 * self._seconds + 0.2 * max(0.0, elapsed)
        self._give_back(client)


class SecretHasher:
    """Hashes and verifies secrets with Argon2id through a ``HashingPool``; reports hashes made
    with older parameters."""

    def __init__(
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        pool: HashingPool | None = None,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        workers = available_cpus()
        self.pool = pool or HashingPool(workers, 2 * workers, 2 * workers)
        # Verifying against this when the account does not exist costs the same as a real
        # verification (same parameters, same work), so response time does not reveal which
        # emails are registered. Written out rather than hashed: a random salt and digest in
        # Argon2's own format verify like any hash and match nothing, and the process does
        # not spend a whole hash (0.1-0.2 s of CPU) at every start.
        self._dummy_hash = _unmatchable_hash(time_cost, memory_kib, parallelism)

    async def hash(self, secret: str, *, client: str = LOCAL_CLIENT) -> str:
        return await self.pool.run(client, self._hasher.hash, secret)

    async def verify(
        self, stored_hash: str | None, secret: str, *, client: str = LOCAL_CLIENT
    ) -> bool:
        """True when ``secret`` matches; with no stored hash, spend the same time and say no."""
        target = stored_hash if stored_hash is not None else self._dummy_hash
        matched = await self.pool.run(client, self._verify_sync, target, secret)
        return matched and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def _verify_sync(self, stored_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _unmatchable_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    """An Argon2id hash string with these parameters and random salt and digest."""

    def encoded(size: int) -> str:
        return base64.b64encode(secrets.token_bytes(size)).decode().rstrip("=")

    return (
        f"$argon2id$v={ARGON2_VERSION}$m={memory_kib},t={time_cost},p={parallelism}"
        f"${encoded(16)}${encoded(32)}"
    )
