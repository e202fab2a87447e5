"""What a test needs from the machine, and what happens when it is missing.

Outside CI a missing requirement skips the test; with ``CI=true`` it fails it, so a broken CI
machine can never pass by skipping.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

__all__ = ["require_reachable", "requirement_missing"]


def requirement_missing(message: str) -> NoReturn:
    """Skip the test for ``message``; under ``CI=true``, fail it instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: failing instead of skipping)")
    pytest.skip(message)


def require_reachable(service: str, host: str, port: int) -> None:
    """Go on only when ``service`` accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError:
        requirement_missing(f"{service} is not reachable on {host}:{port}")
