"""How meshcore lays a caller's grpc options over its own defaults (servers and channels).

grpc keeps the *first* value of an option given twice, so a caller's override appended after the
defaults would change nothing, silently; and a caller's list used instead of the defaults would
drop every default it did not repeat (keepalive, reconnect backoff, message limits). meshcore
therefore merges by name: the defaults, with each override replacing its namesake.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["merged_options"]


def merged_options(
    defaults: Iterable[tuple[str, Any]], overrides: Iterable[tuple[str, Any]] = ()
) -> list[tuple[str, Any]]:
    """``defaults`` with ``overrides`` applied by name, each option once, defaults' order kept."""
    merged = dict(defaults)
    merged.update(overrides)
    return list(merged.items())
