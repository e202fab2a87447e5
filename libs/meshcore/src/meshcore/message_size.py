"""The message-size policy of every meshcore server and client (docs/adr/0015-message-sizes.md).

Requests: a server accepts messages up to ``GRPC_MAX_RECEIVE_MESSAGE_BYTES``. Each service sets
its default at least as large as the largest request its protos allow (every string at its
documented length in 4-byte UTF-8 characters, every list and map full) and refuses a smaller
setting; the limit is never unlimited, so one call cannot make a server buffer without end.
Anything larger is RESOURCE_EXHAUSTED from gRPC itself, before a handler runs.

Responses: every response fits ``MAX_RESPONSE_BYTES`` (4 MiB), the default receive limit of gRPC
in every language, so that a client of any stack, configured or not, can read any answer. Lists
whose pages could outgrow it are fitted to ``PAGE_BUDGET_BYTES`` (``PageBudget``); servers refuse
to send more than ``MAX_RESPONSE_BYTES`` (RESOURCE_EXHAUSTED on the call) rather than send what a
client cannot read.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_RECEIVE_MESSAGE_BYTES",
    "MAX_RECEIVE_MESSAGE_BYTES_CEILING",
    "MAX_RESPONSE_BYTES",
    "PAGE_BUDGET_BYTES",
    "KiB",
    "MiB",
    "PageBudget",
    "field_size",
]

KiB = 1024
MiB = 1024 * KiB

DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 * MiB
"""gRPC's own default: ample for every request of a service without bulk fields."""
MAX_RECEIVE_MESSAGE_BYTES_CEILING = 64 * MiB
"""The highest receive limit a setting may ask for: a bound, whatever the configuration."""
MAX_RESPONSE_BYTES = 4 * MiB
"""Every response fits the 4 MiB default receive limit of other gRPC stacks."""
PAGE_BUDGET_BYTES = MAX_RESPONSE_BYTES * 7 // 8
"""What a page's repeated items may take: the rest of 4 MiB is for the page's other fields."""


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def field_size(field_number: int, payload_bytes: int) -> int:
    """Encoded size of one length-delimited field (a string, bytes, or a message, possibly one
    entry of a repeated field) whose payload is ``payload_bytes`` long: tag, length, payload."""
    return _varint_size(field_number << 3 | 2) + _varint_size(payload_bytes) + payload_bytes


class PageBudget:
    """Counts the encoded bytes of a page's repeated items against ``limit`` bytes."""

    def __init__(self, limit: int = PAGE_BUDGET_BYTES, *, field_number: int = 1) -> None:
        self.limit = limit
        self.used = 0
        self._field_number = field_number

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def cost(self, item_bytes: int) -> int:
        """What an item of ``item_bytes`` (its ``ByteSize()``) takes as one more entry."""
        return field_size(self._field_number, item_bytes)

    def take(self, item_bytes: int) -> bool:
        """Count one more item if it fits; False (and nothing counted) when it does not."""
        cost = self.cost(item_bytes)
        if cost > self.remaining:
            return False
        self.used += cost
        return True
