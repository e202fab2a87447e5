"""What Notification may do to its peers: the permissions in its ``x-service-token``."""

from __future__ import annotations

__all__ = ["NOTIFICATION_PERMISSIONS"]

NOTIFICATION_PERMISSIONS = ("revocation:read",)
"""Notification calls only Auth, to learn which tokens were revoked (ListRevocations)."""
