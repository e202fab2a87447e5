"""What Project needs from its peers, as protocols: Billing, Analytics and Auth's directory.

The service layer depends only on these; ``gateways.py`` implements them over the typed gRPC
clients, and unit tests implement them in memory. Each raises ``meshcore.errors`` exceptions:
``ResourceExhausted`` for a refused limit, ``Unavailable`` when the peer cannot be reached.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["AnalyticsGateway", "BilledMetric", "BillingGateway", "LimitAnswer", "UserDirectory"]


class BilledMetric(enum.StrEnum):
    PROJECTS = "projects"
    MEMBERS_PER_PROJECT = "members_per_project"


@dataclass(frozen=True, slots=True)
class LimitAnswer:
    allowed: bool
    used: int
    limit: int | None
    """None: the plan does not limit this metric."""
    plan_id: str


class BillingGateway(Protocol):
    async def check_limit(
        self, user_id: str, metric: BilledMetric, quantity: int, *, scope_id: str = ""
    ) -> LimitAnswer: ...

    async def record_usage(
        self,
        user_id: str,
        metric: BilledMetric,
        quantity: int,
        *,
        idempotency_key: str,
        scope_id: str = "",
        enforce_limit: bool = False,
    ) -> None:
        """Record a delta once per key; ``ResourceExhausted`` (the plan's facts as metadata)
        when an enforced limit refuses. A failure of a call that never left (the client's
        breaker refused it) carries that refusal as its ``__cause__``, so that the caller knows
        nothing was recorded (``meshcore.resilience.retry.is_unsent``)."""
        ...


class AnalyticsGateway(Protocol):
    async def track_event(
        self, user_id: str, name: str, properties: Mapping[str, str], *, event_id: str
    ) -> None:
        """Track one event; ``event_id`` makes a repeat count once in Analytics."""
        ...


class UserDirectory(Protocol):
    async def user_exists(self, user_id: str) -> bool: ...
