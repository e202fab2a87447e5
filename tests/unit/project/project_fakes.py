"""In-memory peers of Project (Billing, Analytics, Auth's directory) and principals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshcore.context import Principal
from meshcore.errors import AlreadyExists, FailedPrecondition, ResourceExhausted, Unavailable
from meshcore.resilience.breaker import CircuitOpenError
from zoptal_project.ports import BilledMetric, LimitAnswer


@dataclass
class FakeBilling:
    """Billing's contract in memory: idempotent by (user, key), limits enforced atomically."""

    limits: dict[BilledMetric, int] = field(
        default_factory=lambda: {BilledMetric.PROJECTS: 3, BilledMetric.MEMBERS_PER_PROJECT: 5}
    )
    records: dict[tuple[str, str], tuple[BilledMetric, str, int]] = field(default_factory=dict)
    totals: dict[tuple[str, BilledMetric, str], int] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    down: bool = False
    """Refuse every call unsent, as the client does while its breaker is open."""
    lose_answer_after_recording: bool = False
    """Record the usage, then fail as a timed-out call would: the caller cannot know."""

    def used(self, user: str, metric: BilledMetric, scope: str = "") -> int:
        return self.totals.get((user, metric, scope), 0)

    async def check_limit(
        self, user_id: str, metric: BilledMetric, quantity: int, *, scope_id: str = ""
    ) -> LimitAnswer:
        self.calls.append(("check", metric.value))
        if self.down:
            raise Unavailable("billing is down") from CircuitOpenError(retry_after=1.0)
        used = self.used(user_id, metric, scope_id)
        limit = self.limits.get(metric)
        allowed = limit is None or used + quantity <= limit
        return LimitAnswer(allowed=allowed, used=used, limit=limit, plan_id="free")

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
        self.calls.append(("record", idempotency_key))
        if self.down:
            raise Unavailable("billing is down") from CircuitOpenError(retry_after=1.0)
        stored = self.records.get((user_id, idempotency_key))
        if stored is not None:
            if stored != (metric, scope_id, quantity):
                raise AlreadyExists(f"idempotency_key {idempotency_key!r} reused")
        else:
            used = self.used(user_id, metric, scope_id)
            limit = self.limits.get(metric)
            if enforce_limit and quantity > 0 and limit is not None and used + quantity > limit:
                raise ResourceExhausted.of_plan_limit(
                    f"plan limit reached: {metric.value} limit is {limit} on plan 'free'",
                    metric=metric.value,
                    limit=limit,
                    plan_id="free",
                    used=used,
                )
            if used + quantity < 0:
                raise FailedPrecondition("below zero")
            self.records[(user_id, idempotency_key)] = (metric, scope_id, quantity)
            self.totals[(user_id, metric, scope_id)] = used + quantity
        if self.lose_answer_after_recording:
            raise Unavailable("deadline exceeded on the way back")


@dataclass
class FakeAnalytics:
    events: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    broken: bool = False

    async def track_event(
        self, user_id: str, name: str, properties: Mapping[str, str], *, event_id: str
    ) -> None:
        if self.broken:
            raise Unavailable("analytics is down")
        self.events.append((user_id, name, dict(properties)))
        self.event_ids.append(event_id)


@dataclass
class FakeDirectory:
    known: set[str] = field(default_factory=lambda: {"ada", "bob", "cy", "dee", "eve", "fay"})

    async def user_exists(self, user_id: str) -> bool:
        return user_id in self.known


def user(subject: str, *, roles: frozenset[str] = frozenset()) -> Principal:
    return Principal(
        subject=subject,
        kind="user",
        permissions=frozenset({"project:create"}),
        roles=roles,
    )


def service(*permissions: str) -> Principal:
    return Principal(subject="svc-billing", kind="service", permissions=frozenset(permissions))
