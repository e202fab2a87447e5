"""Active health checking over ``grpc.health.v1``: the seed's "Health Checking" section.

A ``HealthChecker`` probes every registered replica each ``health_check_interval`` and feeds the
results to ``ServiceDiscovery.record_check``, which ejects a replica after ``unhealthy_threshold``
consecutive failures and readmits it after ``healthy_threshold`` consecutive successes.

The loop waits on the injected clock, so tests drive it with ``FakeClock.advance``. Probes reuse
the client manager's channel to the replica: one connection per endpoint carries both the calls
and their health checks, so a check sees exactly the connection state calls would see.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.discovery.instance import ServiceInstance
from meshcore.discovery.registry import ServiceDiscovery
from meshcore.tasks import cancel_and_wait

__all__ = ["HEALTH_SERVICE_METADATA_KEY", "GrpcHealthProbe", "HealthChecker", "HealthProbe"]

logger = logging.getLogger(__name__)

CHECK_METHOD = "/grpc.health.v1.Health/Check"

HEALTH_SERVICE_METADATA_KEY = "health_service"
"""Instance metadata naming the ``grpc.health.v1`` service to ask about (default ``""``: the
whole server). The typed clients set it to the full service name, e.g. zoptal.auth.v1.AuthService,
so a server that is up but has marked that one service NOT_SERVING is still ejected."""


class HealthProbe(Protocol):
    async def __call__(self, instance: ServiceInstance, timeout_seconds: float) -> bool:
        """True when ``instance`` answers healthy within the timeout; never raises."""
        ...


class GrpcHealthProbe:
    """``grpc.health.v1.Health/Check`` on the channel ``channel_for(instance)`` returns."""

    def __init__(self, channel_for: Callable[[ServiceInstance], grpc.aio.Channel]) -> None:
        self._channel_for = channel_for

    async def __call__(self, instance: ServiceInstance, timeout_seconds: float) -> bool:
        check = self._channel_for(instance).unary_unary(
            CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        service = instance.metadata.get(HEALTH_SERVICE_METADATA_KEY, "")
        try:
            request = health_pb2.HealthCheckRequest(service=service)
            reply = await check(request, timeout=timeout_seconds)
        except grpc.RpcError:
            return False
        return isinstance(reply, health_pb2.HealthCheckResponse) and (
            reply.status == health_pb2.HealthCheckResponse.SERVING
        )


class HealthChecker:
    """Runs ``probe`` against every replica in ``discovery`` on a fixed interval."""

    def __init__(
        self, discovery: ServiceDiscovery, probe: HealthProbe, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._discovery = discovery
        self._probe = probe
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def check_all(self) -> None:
        """Probe every replica once, concurrently, and record each result."""
        instances = self._discovery.all_instances()
        results = await asyncio.gather(
            *(self._probe_one(instance) for instance in instances), return_exceptions=False
        )
        for instance, passed in zip(instances, results, strict=True):
            # A replica deregistered while its probe ran must not come back through its result.
            if instance in self._discovery.get_instances(instance.name):
                was_healthy = instance.healthy
                self._discovery.record_check(instance, passed)
                if instance.healthy != was_healthy:
                    logger.warning(
                        "endpoint %s (%s) is now %s",
                        instance.address,
                        instance.service,
                        "healthy" if instance.healthy else "unhealthy",
                    )

    async def _probe_one(self, instance: ServiceInstance) -> bool:
        try:
            return await self._probe(instance, self._discovery.timeout_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A probe bug must not stop the loop or leave a replica looking healthy.
            logger.exception("health probe for %s failed unexpectedly", instance.address)
            return False

    async def run(self) -> None:
        """Check now, then once per interval, until cancelled."""
        while True:
            await self.check_all()
            await self._clock.sleep(self._discovery.health_check_interval_seconds)

    def start(self) -> None:
        """Start the loop as a task on the running event loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="meshcore-health-checker"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
