"""Request ids: unique across processes whatever the application does with ``random``."""

from __future__ import annotations

import os
import random

from meshcore.context import new_request_id


def test_request_ids_are_128_bit_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in ids)


def test_seeding_the_global_generator_does_not_repeat_request_ids() -> None:
    """An application that seeds ``random`` (as every worker of a test suite might) must not
    make two processes hand out the same ids: the ids come from a generator of their own."""
    random.seed(1234)
    first = new_request_id()
    random.seed(1234)
    assert new_request_id() != first


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    """Celery's prefork pool forks: without a reseed in the child, parent and child would
    continue the same sequence and repeat each other's ids."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which exits at once
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    parent_id = new_request_id()
    with os.fdopen(read_end, "rb") as pipe:
        child_id = pipe.read().decode()
    os.waitpid(child, 0)
    assert len(child_id) == 32
    assert child_id != parent_id
