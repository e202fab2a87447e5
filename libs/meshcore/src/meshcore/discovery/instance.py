"""One replica of a service, and the live load figures the balancers read.

Every time-valued field here is in seconds (the clock's unit); the seed-compatible constructors
that take milliseconds convert at their boundary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EndpointLoad", "ServiceInstance", "canonical_service_name"]

_DEFAULT_RTT_SECONDS = 0.005
"""The latency assumed for an endpoint that has not answered yet: low enough that a new replica
gets traffic, high enough that it does not win every comparison against a proven fast one."""

_EWMA_DECAY_SECONDS = 10.0
"""Linkerd's peak-EWMA time constant: a latency spike is forgotten over about this long."""


def canonical_service_name(name: str) -> str:
    """One spelling per service: ``authService``, ``auth_service``, ``auth-service``, ``auth``.

    The seed names services three ways (``authService`` in the client manager, ``auth-service``
    in discovery and the mesh config, ``AUTH_ADDR`` in the environment); all of them meet here.
    """
    key = name.strip().lower().replace("-", "").replace("_", "").replace(".", "")
    if key.endswith("service") and key != "service":
        key = key[: -len("service")]
    return key


class EndpointLoad:
    """In-flight calls and a peak-sensitive latency EWMA for one endpoint (read by balancers).

    Plain attributes, no locks: every caller runs on one event loop and no method awaits.
    """

    __slots__ = ("_last_observed", "ewma_seconds", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.ewma_seconds = _DEFAULT_RTT_SECONDS
        self._last_observed: float | None = None

    def observe(self, rtt_seconds: float, now: float) -> None:
        """Fold one round trip into the EWMA; a slower sample replaces the average at once.

        Peak EWMA (Linkerd, Finagle): a replica that turns slow is penalised immediately, and
        only forgiven gradually as fast answers decay the average back down.
        """
        if self._last_observed is None or rtt_seconds > self.ewma_seconds:
            self.ewma_seconds = rtt_seconds
        else:
            elapsed = max(now - self._last_observed, 0.0)
            weight = math.exp(-elapsed / _EWMA_DECAY_SECONDS)
            self.ewma_seconds = self.ewma_seconds * weight + rtt_seconds * (1.0 - weight)
        self._last_observed = now

    def cost(self) -> float:
        """What p2c compares: expected latency scaled by the queue this call would join."""
        return self.ewma_seconds * (self.in_flight + 1)


@dataclass(eq=False)
class ServiceInstance:
    """A registered replica, as in the seed's ``registerService({...})``.

    ``healthy`` is owned by discovery (health checks flip it); ``load`` by the call path.
    Instances compare by identity: two registrations are two replicas even with equal fields.
    """

    id: str
    name: str
    host: str
    port: int
    weight: int = 1
    healthy: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)
    load: EndpointLoad = field(default_factory=EndpointLoad, repr=False)
    consecutive_failures: int = field(default=0, repr=False)
    consecutive_successes: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a service instance needs an id")
        if not 0 < self.port < 65536:
            raise ValueError(f"instance {self.id!r}: port {self.port} is out of range")
        if self.weight < 0:
            raise ValueError(f"instance {self.id!r}: weight must not be negative")

    @property
    def address(self) -> str:
        """``host:port`` as gRPC targets it (IPv6 hosts get their brackets)."""
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def service(self) -> str:
        return canonical_service_name(self.name)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> ServiceInstance:
        """Build from the seed's dict shape: id, name, host, port, weight, healthy, metadata."""
        known = {"id", "name", "host", "port", "weight", "healthy", "metadata"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown service instance fields: {sorted(unknown)}")
        return cls(
            id=str(spec["id"]),
            name=str(spec["name"]),
            host=str(spec["host"]),
            port=int(spec["port"]),
            weight=int(spec.get("weight", 1)),
            healthy=bool(spec.get("healthy", True)),
            metadata={str(k): str(v) for k, v in dict(spec.get("metadata") or {}).items()},
        )
