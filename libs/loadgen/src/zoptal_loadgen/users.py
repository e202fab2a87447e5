"""The generator's users: a fixed pool, registered on first use, reused for every journey.

Reusing a bounded pool keeps a long run from creating unbounded accounts, and holding a user's
lock for a whole journey keeps each user within the free plan (one generated project at a time,
under its limit of three). Password hashing is deliberately expensive on the server (Argon2id,
with bounded concurrency), so registrations and logins are spread out by a small semaphore, as
real sign-ups would be, instead of all arriving in the first second.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass, field

from meshcore.client_manager import Metadata

__all__ = ["PoolUser", "UserPool"]

PASSWORD_OPERATIONS = 2
"""Registrations and logins in flight at once."""


@dataclass(eq=False)
class PoolUser:
    email: str
    password: str = field(repr=False)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    user_id: str = ""
    access_token: str = field(default="", repr=False)
    access_expires_at: float = 0.0
    refresh_token: str = field(default="", repr=False)
    registered: bool = False
    projects: set[str] = field(default_factory=set)
    """Projects created and not deleted yet (deleted at the end of the run)."""

    @property
    def metadata(self) -> Metadata:
        return (("authorization", f"Bearer {self.access_token}"),)

    def needs_login(self, margin_seconds: float = 60.0) -> bool:
        return not self.access_token or self.access_expires_at - margin_seconds <= time.time()


class UserPool:
    def __init__(self, size: int, *, email_domain: str, run_id: str | None = None) -> None:
        run = run_id or secrets.token_hex(4)
        self.users = [
            # A random password per user per run (never logged): no test credential to reuse.
            PoolUser(f"loadgen-{run}-{n}@{email_domain}", f"Lg-{secrets.token_urlsafe(18)}")
            for n in range(size)
        ]
        self.password_operations = asyncio.Semaphore(PASSWORD_OPERATIONS)

    def pick(self) -> PoolUser:
        """An idle user when there is one (else any: its journey waits for the lock)."""
        idle = [user for user in self.users if not user.lock.locked()]
        return random.choice(idle or self.users)

    def other_registered(self, user: PoolUser) -> PoolUser | None:
        others = [u for u in self.users if u is not user and u.registered and u.user_id]
        return random.choice(others) if others else None
