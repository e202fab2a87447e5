"""Argon2id hashing for passwords and client secrets, run off the event loop.

Hashing is deliberately slow (tens of milliseconds), so it runs in a worker thread: argon2-cffi
releases the GIL, and the event loop keeps serving other calls meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["SecretHasher"]


class SecretHasher:
    """Hashes and verifies secrets with Argon2id; reports hashes made with older parameters."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        # Verifying against this when the account does not exist costs the same as a real
        # verification, so response time does not reveal which emails are registered.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, secret: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, secret)

    async def verify(self, stored_hash: str | None, secret: str) -> bool:
        """True when ``secret`` matches; with no stored hash, spend the same time and say no."""
        target = stored_hash if stored_hash is not None else self._dummy_hash
        matched = await asyncio.to_thread(self._verify_sync, target, secret)
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
