"""Request ids: unique across processes whatever the application does with ``random``."""

from __future__ import annotations

import random
import subprocess
import sys

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


_FORK_AND_DRAW = """
import os
from meshcore.context import new_request_id
read_end, write_end = os.pipe()
child = os.fork()
if child == 0:
    os.write(write_end, new_request_id().encode())
    os._exit(0)
os.close(write_end)
parent_id = new_request_id()
with os.fdopen(read_end, "rb") as pipe:
    child_id = pipe.read().decode()
os.waitpid(child, 0)
print(parent_id, child_id)
"""


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    """Celery's prefork pool forks: without a reseed in the child, parent and child would
    continue the same sequence and repeat each other's ids. The fork happens in a fresh
    interpreter: forking pytest itself, with the threads earlier tests left running (gRPC's,
    OpenTelemetry's exporters), once hung the child in their after-fork handlers."""
    done = subprocess.run(
        [sys.executable, "-c", _FORK_AND_DRAW],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parent_id, child_id = done.stdout.split()
    assert len(child_id) == 32
    assert child_id != parent_id
