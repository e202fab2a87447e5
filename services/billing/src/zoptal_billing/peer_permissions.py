"""What Billing may do to its peers: the permissions in its ``x-service-token``."""

from __future__ import annotations

__all__ = ["BILLING_PERMISSIONS"]

BILLING_PERMISSIONS = ("notification:send", "revocation:read", "user:read")
"""What Billing does to its peers: send threshold emails, look up the recipient's address, learn
which tokens Auth revoked (ListRevocations)."""
