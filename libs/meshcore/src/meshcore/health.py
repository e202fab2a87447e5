"""``grpc.health.v1`` for meshcore servers: per-service status driven by dependency checks.

``HealthServicer`` answers Check and Watch for every registered service name and ``""`` (the
whole server), plus ``liveness``: SERVING while the process runs, whatever its dependencies say,
so a Kubernetes liveness probe (``grpc: {service: liveness}``) does not restart a pod just because
the database is down, while the readiness probe (service ``""``) takes it out of rotation.

``HealthMonitor`` runs the dependency checks (``db.ping``, a Redis ping, ...) on an interval of
an injected clock: while any check fails every status is NOT_SERVING, and it returns to SERVING
once all pass again. On shutdown the servicer flips everything to NOT_SERVING for good
and ends open Watch streams, so they do not hold ``server.stop(grace)`` for the whole grace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshcore.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "HEALTH_SERVICE_NAME",
    "LIVENESS_SERVICE",
    "DependencyCheck",
    "DependencyStatus",
    "HealthMonitor",
    "HealthServicer",
]

logger = logging.getLogger(__name__)

HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
ServingStatus: TypeAlias = int
"""A ``grpc.health.v1.HealthCheckResponse.ServingStatus`` value (an int enum)."""
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

LIVENESS_SERVICE = "liveness"
"""The health service name that follows the process (SERVING until shutdown), not dependencies."""

DependencyCheck = Callable[[], Awaitable[object]]
"""An async callable that raises (or returns ``False``) when its dependency is unusable."""


class HealthServicer(health_pb2_grpc.HealthServicer):
    """Check and Watch over an in-memory status table; starts NOT_SERVING until told otherwise."""

    def __init__(self, service_names: Iterable[str] = ()) -> None:
        self._status: dict[str, ServingStatus] = {"": NOT_SERVING, LIVENESS_SERVICE: SERVING}
        for name in service_names:
            self._status[name] = NOT_SERVING
        self._changed = asyncio.Condition()
        self._shutting_down = False

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def status(self, service: str = "") -> ServingStatus:
        return self._status.get(service, SERVICE_UNKNOWN)

    @property
    def service_names(self) -> tuple[str, ...]:
        return tuple(self._status)

    async def set(self, service: str, status: ServingStatus) -> None:
        """Set one service's status (ignored once shutdown began)."""
        if self._shutting_down:
            return
        await self._publish({service: status})

    async def set_all(self, status: ServingStatus) -> None:
        """Set every service, ``""`` included, but not ``liveness`` (ignored once shutting down)."""
        if self._shutting_down:
            return
        names = [name for name in self._status if name != LIVENESS_SERVICE]
        await self._publish(dict.fromkeys(names, status))

    async def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING everywhere, permanently; open Watch streams get it and then end."""
        if self._shutting_down:
            return
        await self._publish(dict.fromkeys(self._status, NOT_SERVING))
        self._shutting_down = True
        async with self._changed:
            self._changed.notify_all()

    async def _publish(self, changes: Mapping[str, ServingStatus]) -> None:
        async with self._changed:
            self._status.update(changes)
            self._changed.notify_all()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last: ServingStatus | None = None
        while True:
            async with self._changed:
                status = self._status.get(request.service, SERVICE_UNKNOWN)
                if status == last and not self._shutting_down:
                    await self._changed.wait()
                    continue
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            if self._shutting_down:
                return


@dataclass(frozen=True)
class DependencyStatus:
    """The last outcome of one dependency check (for logs and HealthCheck-style reports)."""

    name: str
    healthy: bool
    detail: str
    checked_at: float


class HealthMonitor:
    """Polls dependency checks and drives a ``HealthServicer``."""

    def __init__(
        self,
        servicer: HealthServicer,
        checks: Mapping[str, DependencyCheck],
        *,
        interval: float = 5.0,
        timeout: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.servicer = servicer
        self.checks = dict(checks)
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self.report: dict[str, DependencyStatus] = {}
        self.healthy: bool | None = None

    async def check_now(self) -> bool:
        """Run every check once (concurrently), update the statuses, return overall health."""
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._run_one(name) for name in names))
        self.report = {status.name: status for status in outcomes}
        healthy = all(status.healthy for status in outcomes)
        if healthy != self.healthy:
            if healthy:
                logger.info("health: all dependencies healthy, SERVING")
            else:
                failing = ", ".join(f"{s.name} ({s.detail})" for s in outcomes if not s.healthy)
                logger.warning("health: NOT_SERVING, failing dependencies: %s", failing)
        self.healthy = healthy
        await self.servicer.set_all(SERVING if healthy else NOT_SERVING)
        return healthy

    async def run(self) -> None:
        """Check, then re-check every ``interval`` seconds of the clock, until cancelled."""
        while True:
            await self.check_now()
            await self.clock.sleep(self.interval)

    async def _run_one(self, name: str) -> DependencyStatus:
        check = self.checks[name]
        try:
            async with asyncio.timeout(self.timeout):
                result = await check()
        except Exception as exc:  # any failure of a check means "not healthy", never a crash
            detail = f"{type(exc).__name__}: {str(exc)[:200]}"
            cause = exc.__cause__
            if cause is not None:
                detail += f" (caused by {type(cause).__name__})"
            return DependencyStatus(name, False, detail, self.clock.time())
        if result is False:
            return DependencyStatus(name, False, "check returned False", self.clock.time())
        return DependencyStatus(name, True, "ok", self.clock.time())
