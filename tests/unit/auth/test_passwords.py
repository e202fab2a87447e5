"""Argon2id hashing: verification, the unknown-user dummy, and rehash on parameter change."""

from __future__ import annotations

from zoptal_auth.passwords import SecretHasher

CHEAP = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1}


async def test_hash_is_argon2id_and_verifies_only_the_right_password():
    """The stored form is an $argon2id$ hash; the wrong password does not verify."""
    hasher = SecretHasher(**CHEAP)
    stored = await hasher.hash("violet tractor harbour")
    assert stored.startswith("$argon2id$")
    assert "violet" not in stored
    assert await hasher.verify(stored, "violet tractor harbour")
    assert not await hasher.verify(stored, "violet tractor harbouR")


async def test_missing_hash_never_verifies():
    """With no stored hash (unknown user) the answer is no, after the same amount of work."""
    hasher = SecretHasher(**CHEAP)
    assert not await hasher.verify(None, "anything at all here")


async def test_hash_made_with_other_parameters_needs_a_rehash():
    """Raising the cost makes old hashes report needs_rehash, and new hashes do not."""
    old = SecretHasher(**CHEAP)
    new = SecretHasher(time_cost=2, memory_kib=2048, parallelism=1)
    stored = await old.hash("violet tractor harbour")
    assert new.needs_rehash(stored)
    assert await new.verify(stored, "violet tractor harbour")
    assert not new.needs_rehash(await new.hash("violet tractor harbour"))
    assert new.needs_rehash("not a hash at all")
