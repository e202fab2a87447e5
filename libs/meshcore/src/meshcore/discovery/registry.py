"""ServiceDiscovery: the registry of replicas, their health, and endpoint selection.

Follows the seed's ``new ServiceDiscovery({healthCheckInterval, unhealthyThreshold,
healthyThreshold, timeout})``. Durations are **milliseconds**, as in the seed, so its examples
port line by line (``ServiceDiscovery(health_check_interval=30000, ...)``); inside, everything is
seconds on the injected clock.

Sources of instances plug in from outside: static configuration (``discovery.static``), or a
watcher such as a Kubernetes EndpointSlice watch that calls ``sync_service`` with the current
replica set. Health checking (``discovery.health``) flips ``healthy`` through ``record_check``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from meshcore.balancing import Strategy, make_strategy
from meshcore.discovery.instance import ServiceInstance, canonical_service_name
from meshcore.errors import Unavailable

__all__ = ["ChangeListener", "NoHealthyEndpoint", "ServiceDiscovery"]

ChangeListener = Callable[[str, "ServiceInstance", str], None]
"""Called with (service, instance, event); event is one of registered, deregistered, healthy,
unhealthy."""


class NoHealthyEndpoint(Unavailable):
    """No replica of the service is healthy (or known): UNAVAILABLE, naming the service."""

    def __init__(self, service: str, known: int) -> None:
        detail = "none registered" if known == 0 else f"0 of {known} healthy"
        super().__init__(f"no healthy endpoint for service {service!r} ({detail})")
        self.service = service


class ServiceDiscovery:
    """Replicas per service, health thresholds, and ``get_endpoint(name, strategy)``."""

    def __init__(
        self,
        health_check_interval: float = 30_000,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 2,
        timeout: float = 5_000,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if health_check_interval <= 0 or timeout <= 0:
            raise ValueError("health_check_interval and timeout must be positive milliseconds")
        if unhealthy_threshold < 1 or healthy_threshold < 1:
            raise ValueError("health thresholds must be at least 1")
        self.health_check_interval_seconds = health_check_interval / 1000.0
        self.timeout_seconds = timeout / 1000.0
        self.unhealthy_threshold = unhealthy_threshold
        self.healthy_threshold = healthy_threshold
        self._rng = rng
        self._instances: dict[str, dict[str, ServiceInstance]] = {}
        # Healthy tuples are rebuilt on every change so the per-call path is one dict lookup.
        self._healthy: dict[str, tuple[ServiceInstance, ...]] = {}
        self._strategies: dict[tuple[str, str], Strategy] = {}
        self._listeners: list[ChangeListener] = []

    # -- registration ---------------------------------------------------------------------

    def register_service(self, instance: ServiceInstance | Mapping[str, Any]) -> ServiceInstance:
        """Add a replica (the seed's dict shape or a ``ServiceInstance``); same id replaces."""
        if not isinstance(instance, ServiceInstance):
            instance = ServiceInstance.from_mapping(instance)
        service = instance.service
        replicas = self._instances.setdefault(service, {})
        previous = replicas.get(instance.id)
        replicas[instance.id] = instance
        self._rebuild(service)
        if previous is not None and previous is not instance:
            self._notify(service, previous, "deregistered")
        self._notify(service, instance, "registered")
        return instance

    def deregister_service(self, instance_id: str, name: str | None = None) -> bool:
        """Remove a replica by id (optionally within one service); True when one was removed."""
        services = [canonical_service_name(name)] if name else list(self._instances)
        for service in services:
            instance = self._instances.get(service, {}).pop(instance_id, None)
            if instance is not None:
                self._rebuild(service)
                self._notify(service, instance, "deregistered")
                return True
        return False

    def sync_service(self, name: str, instances: Iterable[ServiceInstance]) -> None:
        """Make ``name``'s replica set exactly ``instances`` (for watchers such as Kubernetes).

        Replicas whose id is already known keep their health counters and load figures, so a
        periodic resync does not reset ejections or the balancers' latency history.
        """
        service = canonical_service_name(name)
        wanted = {instance.id: instance for instance in instances}
        current = self._instances.get(service, {})
        for instance_id in list(current):
            if instance_id not in wanted:
                self.deregister_service(instance_id, service)
        for instance_id, instance in wanted.items():
            known = current.get(instance_id)
            if known is not None and known.address == instance.address:
                known.weight = instance.weight
                known.metadata = instance.metadata
                continue
            self.register_service(instance)

    # -- lifecycle of a dynamic source ----------------------------------------------------

    def start(self) -> None:
        """Start what keeps the replicas current (a subclass's watches); the client manager
        calls it on first use, inside the event loop. Static replicas need nothing."""

    async def close(self) -> None:
        """Stop what ``start`` started; the replicas last known stay registered."""

    # -- queries --------------------------------------------------------------------------

    def services(self) -> list[str]:
        return sorted(self._instances)

    def get_instances(self, name: str) -> list[ServiceInstance]:
        """Every registered replica of ``name``, healthy or not."""
        return list(self._instances.get(canonical_service_name(name), {}).values())

    def all_instances(self) -> list[ServiceInstance]:
        return [i for replicas in self._instances.values() for i in replicas.values()]

    def healthy_instances(self, name: str) -> tuple[ServiceInstance, ...]:
        """Healthy replicas of ``name`` (a tuple rebuilt on change, cheap to read per call)."""
        found = self._healthy.get(name)
        if found is None:
            found = self._healthy.get(canonical_service_name(name), ())
        return found

    def get_endpoint(self, name: str, strategy: str = "round-robin") -> ServiceInstance:
        """One healthy replica of ``name`` chosen by ``strategy``; ``NoHealthyEndpoint`` if none."""
        service = canonical_service_name(name)
        return self.pick(service, self.healthy_instances(service), strategy)

    def pick(
        self, service: str, candidates: Sequence[ServiceInstance], strategy: str = "round-robin"
    ) -> ServiceInstance:
        """Apply ``service``'s ``strategy`` object to ``candidates`` (a subset of its replicas).

        ``service`` must be canonical (``canonical_service_name``); the call path passes it so.
        """
        if not candidates:
            raise NoHealthyEndpoint(service, len(self._instances.get(service, {})))
        if len(candidates) == 1:
            return candidates[0]
        key = (service, strategy)
        chooser = self._strategies.get(key)
        if chooser is None:
            chooser = self._strategies[key] = make_strategy(strategy, self._rng)
        return chooser.pick(candidates)

    # -- health ---------------------------------------------------------------------------

    def record_check(self, instance: ServiceInstance, passed: bool) -> None:
        """Count one health check; flip ``healthy`` after the configured consecutive results."""
        if passed:
            instance.consecutive_failures = 0
            instance.consecutive_successes += 1
            if not instance.healthy and instance.consecutive_successes >= self.healthy_threshold:
                self._set_health(instance, True)
        else:
            instance.consecutive_successes = 0
            instance.consecutive_failures += 1
            if instance.healthy and instance.consecutive_failures >= self.unhealthy_threshold:
                self._set_health(instance, False)

    def _set_health(self, instance: ServiceInstance, healthy: bool) -> None:
        instance.healthy = healthy
        self._rebuild(instance.service)
        self._notify(instance.service, instance, "healthy" if healthy else "unhealthy")

    # -- change notification --------------------------------------------------------------

    def add_listener(self, listener: ChangeListener) -> None:
        """Be told about registrations and health flips (the client manager closes channels)."""
        self._listeners.append(listener)

    def _notify(self, service: str, instance: ServiceInstance, event: str) -> None:
        for listener in self._listeners:
            listener(service, instance, event)

    def _rebuild(self, service: str) -> None:
        replicas = self._instances.get(service, {})
        if not replicas:
            self._instances.pop(service, None)
            self._healthy.pop(service, None)
            return
        self._healthy[service] = tuple(i for i in replicas.values() if i.healthy)
