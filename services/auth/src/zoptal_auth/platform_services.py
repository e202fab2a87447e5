"""The platform's own services and what each may do to its peers: Auth is where that is decided.

Each entry is a service account that ``python -m zoptal_auth service-identity ensure`` creates
once per install (its credential is generated then, never committed). The grants follow the call
graph in docs/architecture.md and nothing more: a service token carries exactly its account's
grants, so Analytics, which only polls revocations, can never write usage to Billing.
The names are reserved: CreateServiceAccount refuses them, so no other account can carry a
platform service's ``serviceName`` (which mTLS peers match against their certificates).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["PLATFORM_SERVICES"]

PLATFORM_SERVICES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # Meter usage (check limits, record usage), track events, check that members exist.
        "project": (
            "analytics:write",
            "billing:read",
            "billing:write",
            "revocation:read",
            "user:read",
        ),
        # Send threshold emails to the account's owner, whose address it looks up.
        "billing": ("notification:send", "revocation:read", "user:read"),
        # Notification and Analytics call only Auth, to learn which tokens were revoked.
        "notification": ("revocation:read",),
        "analytics": ("revocation:read",),
    }
)
