"""Login throttling: per account and client, per account, and per client; checked before Argon2.

Three records, keyed on hashes of the normalised email and of the real client address
(``meshcore.interceptors.client_address``), never on either in clear:

* **(account, client)**: after ``free_failures`` failed logins, each further failure blocks
  that client from that account for ``backoff_base * 2**n`` seconds, at most ``backoff_max``.
  This is what stops one client guessing one account's password. A successful login clears it.
* **account**: the same with a much higher threshold (``account_free_failures``) and a short
  cap (``account_backoff_max``), against a guesser spread over many addresses. It can delay
  the account's owner, never lock them out: a client refused by it gets a ticket for when the
  block ends and is let in then (within ``account_backoff_max`` of it) even if the attacker's
  failures have blocked the account again meanwhile. So the owner waits at most one cap.
* **client**: at most ``client_max_failures`` failures per ``client_window`` across all
  accounts, against credential stuffing (one password tried on many accounts).

Failures are forgotten ``memory`` seconds after the last one. A refusal is RESOURCE_EXHAUSTED
with ``google.rpc.RetryInfo`` and costs no Argon2 work (it is checked first), and refused
attempts are not counted, so hammering a block does not lengthen it. Unknown emails are
throttled exactly like registered ones: the answers do not tell them apart.

The records live in Redis when ``REDIS_URL`` is set (``login_throttle_redis``: one Lua script
per check, shared by every replica) and in process otherwise (embedded mode). When Redis fails,
``RATE_LIMIT_FAIL_MODE`` decides: ``open`` logs and lets logins through, ``closed`` refuses them
with UNAVAILABLE.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import ResourceExhausted, Unavailable
from meshcore.timeutil import backoff

from zoptal_auth.reasons import AuthReason

__all__ = [
    "InMemoryLoginStore",
    "LoginStore",
    "LoginThrottle",
    "LoginThrottlePolicy",
    "account_key",
    "client_key",
]

logger = logging.getLogger(__name__)

ADMITTED = -1.0
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class LoginThrottlePolicy:
    """The numbers; ``AuthSettings`` carries them as ``LOGIN_*`` variables."""

    free_failures: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 900.0
    account_free_failures: int = 50
    account_backoff_max: float = 30.0
    client_max_failures: int = 100
    client_window: float = 600.0
    memory: float = 3600.0

    def backoff(self, failures: int, free: int, cap: float) -> float:
        """Seconds blocked after the ``failures``-th failure; 0 while still free."""
        over = failures - free
        return backoff(over, self.backoff_base, cap) if over > 0 else 0.0


class LoginStore(Protocol):
    """Where the records live. Times are seconds since the epoch from the throttle's clock;
    ``check`` answers the seconds to wait, or ``ADMITTED`` (-1)."""

    async def check(self, account: str, client: str, now: float) -> float: ...

    async def failed(self, account: str, client: str, now: float) -> None: ...

    async def succeeded(self, account: str, client: str, now: float) -> None: ...

    async def close(self) -> None: ...


def _digest(kind: str, value: str) -> str:
    # Keys name no email and no address: a dump of Redis does not list who logs in from where.
    return hashlib.sha256(f"zoptal-login-{kind}:{value}".encode()).hexdigest()[:32]


def account_key(email: str) -> str:
    """The account's key: the email as Login looks it up (trimmed, lower case), hashed."""
    return _digest("account", email.strip().lower())


def client_key(address: str) -> str:
    return _digest("client", address)


@dataclass(slots=True)
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0
    ticket: float = 0.0


class InMemoryLoginStore:
    """The records in dicts, for embedded mode and single replicas (not shared between them).

    At most ``max_entries`` records of each kind: past that the oldest are dropped, so memory
    stays bounded whatever a client sends (Redis is the store for deployments that need more).
    """

    def __init__(self, policy: LoginThrottlePolicy, *, max_entries: int = 100_000) -> None:
        self._policy = policy
        self._max_entries = max_entries
        self._pairs: dict[tuple[str, str], _Record] = {}
        self._accounts: dict[str, _Record] = {}
        self._clients: dict[str, _Record] = {}  # failures in the window ending blocked_until

    async def check(self, account: str, client: str, now: float) -> float:
        policy = self._policy
        window = self._clients.get(client)
        full = window is not None and window.failures >= policy.client_max_failures
        if window is not None and full and now < window.blocked_until:
            return window.blocked_until - now
        pair = self._live(self._pairs, (account, client), now)
        if pair is not None and now < pair.blocked_until:
            return pair.blocked_until - now
        whole = self._live(self._accounts, account, now)
        if whole is None or now >= whole.blocked_until:
            if pair is not None:
                pair.ticket = 0.0
            return ADMITTED
        if pair is None:
            pair = self._insert(self._pairs, (account, client), _Record())
        if pair.ticket and pair.ticket <= now <= pair.ticket + policy.account_backoff_max:
            pair.ticket = 0.0  # waited its turn: in, once, whoever blocked the account since
            return ADMITTED
        if not pair.ticket or now > pair.ticket + policy.account_backoff_max:
            pair.ticket = whole.blocked_until
        return pair.ticket - now

    async def failed(self, account: str, client: str, now: float) -> None:
        policy = self._policy
        window = self._clients.get(client)
        if window is None or now >= window.blocked_until:
            window = self._insert(self._clients, client, _Record(0, now + policy.client_window))
        window.failures += 1
        pair = self._live(self._pairs, (account, client), now) or self._insert(
            self._pairs, (account, client), _Record()
        )
        self._bump(pair, now, policy.free_failures, policy.backoff_max)
        whole = self._live(self._accounts, account, now) or self._insert(
            self._accounts, account, _Record()
        )
        self._bump(whole, now, policy.account_free_failures, policy.account_backoff_max)

    async def succeeded(self, account: str, client: str, now: float) -> None:
        self._pairs.pop((account, client), None)

    async def close(self) -> None:
        return None

    def _bump(self, record: _Record, now: float, free: int, cap: float) -> None:
        record.failures += 1
        record.last_failure = now
        delay = self._policy.backoff(record.failures, free, cap)
        if delay:
            record.blocked_until = max(record.blocked_until, now + delay)

    def _live(self, records: dict[K, _Record], key: K, now: float) -> _Record | None:
        """The record, with failures forgotten ``memory`` seconds after the last one."""
        record = records.get(key)
        if record is not None and now - record.last_failure > self._policy.memory:
            record.failures = 0
            record.blocked_until = 0.0
            record.last_failure = now
        return record

    def _insert(self, records: dict[K, _Record], key: K, record: _Record) -> _Record:
        records.pop(key, None)
        while len(records) >= self._max_entries:
            records.pop(next(iter(records)))
        records[key] = record
        return record


class LoginThrottle:
    """Asks the store before a login's Argon2 work and tells it the outcome afterwards."""

    def __init__(
        self,
        store: LoginStore,
        *,
        fail_mode: Literal["open", "closed"] = "open",
        clock: Clock = SYSTEM_CLOCK,
        log_interval: float = 10.0,
    ) -> None:
        self._store = store
        self._fail_open = fail_mode == "open"
        self._clock = clock
        self._log_interval = log_interval
        self._last_logged = -float("inf")

    async def check(self, email: str, client: str) -> None:
        """Raise RESOURCE_EXHAUSTED (with the delay) when this login must wait."""
        try:
            wait = await self._store.check(
                account_key(email), client_key(client), self._clock.time()
            )
        except Exception as error:  # the store (Redis) is down: the configured choice
            self._store_failed(error)
            if self._fail_open:
                return
            raise Unavailable.of_dependency("redis", "login throttle unavailable") from None
        if wait >= 0:
            raise ResourceExhausted(
                "too many failed logins: try again later",
                reason=AuthReason.LOGIN_THROTTLED,
                retry_after=max(wait, 0.001),
            )

    async def failed(self, email: str, client: str) -> None:
        await self._record(self._store.failed, email, client)

    async def succeeded(self, email: str, client: str) -> None:
        await self._record(self._store.succeeded, email, client)

    async def close(self) -> None:
        await self._store.close()

    async def _record(self, operation: _Operation, email: str, client: str) -> None:
        try:
            await operation(account_key(email), client_key(client), self._clock.time())
        except Exception as error:  # the login's answer stands; only the count is lost
            self._store_failed(error)

    def _store_failed(self, error: Exception) -> None:
        now = self._clock.monotonic()
        if now - self._last_logged >= self._log_interval:
            self._last_logged = now
            logger.warning(
                "login throttle store failed (%s): failing %s",
                type(error).__name__,
                "open" if self._fail_open else "closed",
                extra={"error": str(error)},
            )


class _Operation(Protocol):
    async def __call__(self, account: str, client: str, now: float) -> None: ...
