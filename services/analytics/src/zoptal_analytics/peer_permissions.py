"""What Analytics may do to its peers: the permissions in its ``x-service-token``."""

from __future__ import annotations

__all__ = ["ANALYTICS_PERMISSIONS"]

ANALYTICS_PERMISSIONS = ("revocation:read",)
"""Analytics calls only Auth, to learn which tokens were revoked (ListRevocations)."""
