"""Channel options for the client-side integration tests (the replicas: tests/replicas.py)."""

from __future__ import annotations

import pytest

FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 200),
    ("grpc.keepalive_permit_without_calls", 0),
)


@pytest.fixture
def fast_reconnect() -> tuple[tuple[str, int], ...]:
    """Channel options that let a restarted replica be reached again within 0.2 s."""
    return FAST_RECONNECT
