"""What the client manager is told about each service, in the shapes the seed and settings use.

``create_grpc_client_manager`` accepts, per service key (``authService``, ``auth-service`` or
``auth`` all mean the same service):

* ``{"host": "localhost", "port": 4000}`` (the seed), optionally with ``weight``,
  ``maxRetries``/``max_retries``, ``timeout`` (ms), ``strategy`` and ``health_service``;
* ``{"endpoints": [{"host": ..., "port": ..., "weight": 3}, ...], ...}`` for several replicas;
* ``"10.0.0.5:4000,10.0.0.6:4000"`` or ``("10.0.0.5:4000", ...)`` (``<SVC>_ADDR`` and
  ``ServiceSettings.peers``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshcore.balancing import STRATEGIES
from meshcore.discovery.instance import ServiceInstance, canonical_service_name
from meshcore.discovery.static import split_address
from meshcore.settings import parse_addresses

__all__ = ["ServiceConfig", "ServiceSpec", "parse_service_configs"]

ServiceSpec = str | Sequence[str] | Mapping[str, Any]

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

    def instances(self) -> list[ServiceInstance]:
        metadata = {"health_service": self.health_service} if self.health_service else {}
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
    )


def _endpoint(item: Any) -> tuple[str, int, int]:
    if isinstance(item, str):
        host, port = split_address(item)
        return host, port, 1
    return str(item["host"]), int(item["port"]), int(item.get("weight", 1))
