"""One metric family per Prometheus registry and name, however many owners share the registry.

prometheus_client refuses a second family of the same name in one registry; meshcore builds its
families lazily (interceptors, breakers, pools are made many times per process), so every family
is made through ``per_registry`` and reused afterwards.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["counter", "gauge", "per_registry"]

T = TypeVar("T")
_families: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def per_registry(registry: CollectorRegistry, name: str, build: Callable[[], T]) -> T:
    """One metric family per registry and name, however many interceptors share the registry."""
    families = _families.setdefault(registry, {})
    if name not in families:
        families[name] = build()
    family: T = families[name]
    return family


def counter(
    registry: CollectorRegistry, name: str, documentation: str, labels: Sequence[str] = ()
) -> Counter:
    """The registry's counter ``name`` (``<name>_total`` on /metrics), made on first use."""
    return per_registry(
        registry, name, lambda: Counter(name, documentation, labels, registry=registry)
    )


def gauge(
    registry: CollectorRegistry, name: str, documentation: str, labels: Sequence[str] = ()
) -> Gauge:
    """The registry's gauge ``name``, made on first use."""
    return per_registry(
        registry, name, lambda: Gauge(name, documentation, labels, registry=registry)
    )
