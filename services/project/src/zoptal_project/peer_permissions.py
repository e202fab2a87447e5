"""What Project may do to its peers: the permissions in its ``x-service-token``."""

from __future__ import annotations

__all__ = ["PROJECT_PERMISSIONS"]

PROJECT_PERMISSIONS = (
    "analytics:write",
    "billing:read",
    "billing:write",
    "revocation:read",
    "user:read",
)
"""What Project does to its peers: meter usage, track events, check that members exist, learn
which tokens Auth revoked (ListRevocations)."""
