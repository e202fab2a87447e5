"""Auth's own ``google.rpc.ErrorInfo`` reasons (shared ones: ``meshcore.reasons``).

auth.proto names each RPC's reasons; tests/unit/test_error_reasons_documented.py checks that the
proto and these agree.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["AuthReason"]


@unique
class AuthReason(StrEnum):
    LOGIN_THROTTLED = "LOGIN_THROTTLED"
    """RESOURCE_EXHAUSTED with RetryInfo: too many failed logins for this account or from this
    client; wait the delay (a capped back-off, never a lockout)."""
    HASHING_BUSY = "HASHING_BUSY"
    """RESOURCE_EXHAUSTED with RetryInfo: the server's password hashing is at capacity (for
    this client or in all); wait the delay."""
