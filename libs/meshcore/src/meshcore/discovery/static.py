"""Static discovery: replicas from configuration or ``<SVC>_ADDR`` variables.

The client manager's configuration (``create_grpc_client_manager({...})``) accepts, per service
key (``authService``, ``auth-service`` or ``auth`` all mean the same service):

* ``{"host": "localhost", "port": 4000}`` (the seed), optionally with ``weight``,
  ``maxRetries``/``max_retries``, ``timeout`` (ms), ``strategy`` and ``health_service``;
* ``{"endpoints": [{"host": ..., "port": ..., "weight": 3}, ...], ...}`` for several replicas;
* ``"10.0.0.5:4000,10.0.0.6:4000"`` or ``("10.0.0.5:4000", ...)`` (``<SVC>_ADDR`` and
  ``ServiceSettings.peers``).

``AUTH_ADDR=10.0.0.5:4000,10.0.0.6:4000`` registers two replicas of ``auth`` with ids
``auth-1`` and ``auth-2``. This is the embedded and docker compose source of truth; a dynamic
source (Kubernetes) replaces it by calling ``ServiceDiscovery.sync_service`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshcore.balancing import STRATEGIES
from meshcore.discovery.health import HEALTH_SERVICE_METADATA_KEY
from meshcore.discovery.instance import ServiceInstance, canonical_service_name
from meshcore.discovery.registry import ServiceDiscovery
from meshcore.settings import parse_addresses

__all__ = [
    "ServiceConfig",
    "ServiceSpec",
    "instances_from_addresses",
    "parse_service_configs",
    "register_from_env",
    "split_address",
]

ServiceSpec = str | Sequence[str] | Mapping[str, Any]


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into (host, port)."""
    host, _, port = address.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host, int(port)


def instances_from_addresses(name: str, addresses: str | Sequence[str]) -> list[ServiceInstance]:
    """One ``ServiceInstance`` per address, ids ``<service>-1``, ``<service>-2``, ..."""
    service = canonical_service_name(name)
    return _parse_one(service, addresses).instances()


def register_from_env(
    discovery: ServiceDiscovery,
    services: Iterable[str],
    *,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> list[str]:
    """Register ``<SVC>_ADDR`` replicas (else ``defaults[svc]``) for each of ``services``.

    Returns the services that had an address; the rest are left for the caller to report.
    """
    env = os.environ if environ is None else environ
    found = []
    for name in services:
        service = canonical_service_name(name)
        raw = env.get(f"{service.upper()}_ADDR") or (defaults or {}).get(service)
        if not raw:
            continue
        discovery.sync_service(service, instances_from_addresses(service, raw))
        found.append(service)
    return found


_ALIASES = {
    "maxRetries": "max_retries",
    "healthService": "health_service",
}
_KNOWN = {"host", "port", "weight", "endpoints", "max_retries", "timeout", "strategy"}
_KNOWN |= {"health_service", "metadata"}


@dataclass(frozen=True)
class ServiceConfig:
    """One service's replicas and call policy. ``None`` means "use the manager's default"."""

    name: str
    endpoints: tuple[tuple[str, int, int], ...]  # (host, port, weight)
    max_retries: int | None = None
    timeout_ms: float | None = None
    strategy: str | None = None
    health_service: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Copied onto every replica (``version``, ``zone``, ...), as the seed's registrations."""

    def instances(self) -> list[ServiceInstance]:
        metadata = dict(self.metadata)
        if self.health_service:
            metadata[HEALTH_SERVICE_METADATA_KEY] = self.health_service
        return [
            ServiceInstance(
                id=f"{self.name}-{index}",
                name=self.name,
                host=host,
                port=port,
                weight=weight,
                metadata=dict(metadata),
            )
            for index, (host, port, weight) in enumerate(self.endpoints, start=1)
        ]


def parse_service_configs(services: Mapping[str, ServiceSpec]) -> dict[str, ServiceConfig]:
    """Every accepted shape into ``ServiceConfig``; errors name the service and the problem."""
    parsed: dict[str, ServiceConfig] = {}
    for key, spec in services.items():
        name = canonical_service_name(key)
        if name in parsed:
            raise ValueError(f"service {key!r} is configured twice (as {name!r})")
        try:
            parsed[name] = _parse_one(name, spec)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"service {key!r}: {error}") from None
    return parsed


def _parse_one(name: str, spec: ServiceSpec) -> ServiceConfig:
    if isinstance(spec, str) or (isinstance(spec, Sequence) and not isinstance(spec, Mapping)):
        addresses = parse_addresses(spec) if isinstance(spec, str) else tuple(spec)
        endpoints = tuple((*split_address(address), 1) for address in addresses)
        return ServiceConfig(name=name, endpoints=endpoints)
    options = {_ALIASES.get(k, k): v for k, v in spec.items()}
    unknown = set(options) - _KNOWN
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}")
    if "endpoints" in options:
        endpoints = tuple(_endpoint(item) for item in options["endpoints"])
    else:
        endpoints = (_endpoint(options),)
    if not endpoints:
        raise ValueError("no endpoints")
    strategy = options.get("strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    max_retries = options.get("max_retries")
    timeout = options.get("timeout")
    return ServiceConfig(
        name=name,
        endpoints=endpoints,
        max_retries=None if max_retries is None else int(max_retries),
        timeout_ms=None if timeout is None else float(timeout),
        strategy=strategy,
        health_service=str(options.get("health_service", "")),
        metadata={str(k): str(v) for k, v in dict(options.get("metadata") or {}).items()},
    )


def _endpoint(item: Any) -> tuple[str, int, int]:
    if isinstance(item, str):
        host, port = split_address(item)
        return host, port, 1
    return str(item["host"]), int(item["port"]), int(item.get("weight", 1))
