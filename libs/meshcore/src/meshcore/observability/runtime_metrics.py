"""Prometheus metrics of meshcore's own machinery: breakers, retries, rate limiting, database
pools, certificate expiry and backlogs of stored work.

The gRPC and rate-limit metrics (``grpc_server_*``, ``grpc_client_*``, ``meshcore_rate_limit_*``)
live with their interceptors; these are the
rest that the dashboards and alert rules in ``deploy/observability/`` read. Each family is made
once per registry (``per_registry``) and every labelled child that a dashboard shows is created
when its owner is (a breaker, a peer service), so a panel has a series at zero before the first
event instead of no data.

Names (all exported on ``/metrics`` at ``METRICS_PORT``):

* ``meshcore_circuit_breaker_state{peer_service, endpoint, state}``: 1 for the current state of
  each endpoint's breaker (``closed``, ``open``, ``half-open``), 0 for the others.
* ``meshcore_circuit_breaker_transitions_total{peer_service, state}``: entries into each state.
* ``meshcore_client_retries_total{peer_service}``: retry attempts after a failed first attempt.
* ``meshcore_db_pool_connections{pool, state}``: ``in_use`` and ``idle`` pooled connections;
  ``meshcore_db_pool_max_connections{pool}``: the pool's size plus its overflow.
* ``meshcore_tls_certificate_not_after_timestamp_seconds{file}``: when the service's certificate
  (``cert``) and CA certificate (``ca``) expire, read from the files at scrape time.
* ``meshcore_backlog_items{backlog}`` and ``meshcore_backlog_oldest_age_seconds{backlog}``:
  stored work not yet done (outboxes, queued deliveries), refreshed by ``BacklogMonitor``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cryptography import x509
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.observability.registry import counter, gauge, per_registry
from meshcore.timeutil import as_utc

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.pool import Pool
    from sqlalchemy.sql._typing import _ColumnExpressionArgument

    from meshcore.resilience.breaker import CircuitBreaker, CircuitState
    from meshcore.tls.files import TlsFiles

__all__ = [
    "BacklogMonitor",
    "BacklogSnapshot",
    "breaker_state_listener",
    "observe_breaker",
    "observe_certificates",
    "observe_pool",
    "retries_counter",
    "table_backlog",
]

logger = logging.getLogger(__name__)

_BREAKER_STATES = ("closed", "open", "half-open")


# -- breakers -----------------------------------------------------------------------------------


def _breaker_gauge(registry: CollectorRegistry) -> Gauge:
    return gauge(
        registry,
        "meshcore_circuit_breaker_state",
        "1 for the current state of each endpoint's circuit breaker, 0 for the others",
        ["peer_service", "endpoint", "state"],
    )


def _breaker_transitions(registry: CollectorRegistry) -> Counter:
    return counter(
        registry,
        "meshcore_circuit_breaker_transitions",
        "Circuit breaker state changes, by the state entered",
        ["peer_service", "state"],
    )


def _set_breaker_state(
    registry: CollectorRegistry, peer_service: str, endpoint: str, current: str
) -> None:
    gauge = _breaker_gauge(registry)
    for state in _BREAKER_STATES:
        gauge.labels(peer_service, endpoint, state).set(1.0 if state == current else 0.0)


def observe_breaker(
    breaker: CircuitBreaker,
    peer_service: str,
    endpoint: str,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    """Export a new breaker's state (closed) and zeroed transition counts for its peer."""
    _set_breaker_state(registry, peer_service, endpoint, "closed")
    transitions = _breaker_transitions(registry)
    for state in _BREAKER_STATES:
        transitions.labels(peer_service, state)


def breaker_state_listener(
    peer_service: str, endpoint: str, registry: CollectorRegistry = REGISTRY
) -> Callable[[CircuitBreaker, CircuitState, CircuitState], None]:
    """A ``CircuitBreaker(on_state_change=...)`` that keeps the breaker's series current."""

    def changed(_breaker: CircuitBreaker, _old: CircuitState, new: CircuitState) -> None:
        _set_breaker_state(registry, peer_service, endpoint, new.value)
        _breaker_transitions(registry).labels(peer_service, new.value).inc()

    return changed


# -- retries ------------------------------------------------------------------------------------


def retries_counter(peer_service: str, registry: CollectorRegistry = REGISTRY) -> Any:
    """The retry counter's child for calls to ``peer_service`` (created at zero)."""
    family = counter(
        registry,
        "meshcore_client_retries",
        "Retry attempts of calls to a peer service after their first attempt failed",
        ["peer_service"],
    )
    return family.labels(peer_service)


# -- collectors read at scrape time -------------------------------------------------------------


C = TypeVar("C", bound=Collector)


def _registered(collector: C, registry: CollectorRegistry) -> C:
    registry.register(collector)
    return collector


class _PoolCollector(Collector):
    """Connection counts of every observed SQLAlchemy pool (QueuePool-like pools only)."""

    def __init__(self) -> None:
        self.pools: weakref.WeakKeyDictionary[Pool, str] = weakref.WeakKeyDictionary()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily(
            "meshcore_db_pool_connections",
            "Pooled database connections, in use (checked out) or idle",
            labels=["pool", "state"],
        )
        most = GaugeMetricFamily(
            "meshcore_db_pool_max_connections",
            "Connections the pool may hold at once (pool size plus overflow)",
            labels=["pool"],
        )
        # Pools sharing a name (two Database objects of one service) add up: a name must not
        # appear twice in one scrape, or Prometheus rejects the whole scrape.
        totals: dict[str, list[float]] = {}
        for pool, name in list(self.pools.items()):
            checked_out = getattr(pool, "checkedout", None)
            if checked_out is None:  # NullPool, StaticPool: nothing pooled to count
                continue
            size = pool.size()  # type: ignore[attr-defined]
            overflow = max(getattr(pool, "_max_overflow", 0), 0)
            total = totals.setdefault(name, [0.0, 0.0, 0.0])
            total[0] += checked_out()
            total[1] += pool.checkedin()  # type: ignore[attr-defined]
            total[2] += size + overflow
        for name, (in_use, idle, most_connections) in totals.items():
            used.add_metric([name, "in_use"], in_use)
            used.add_metric([name, "idle"], idle)
            most.add_metric([name], most_connections)
        yield used
        yield most


def observe_pool(pool: Pool, name: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Export ``pool``'s connection counts as ``pool=name`` for as long as the pool lives."""
    collector = per_registry(
        registry, "meshcore_db_pool", lambda: _registered(_PoolCollector(), registry)
    )
    collector.pools[pool] = name


class _CertificateCollector(Collector):
    """``notAfter`` of the observed certificate files, re-read only when a file changes."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        self._seen: dict[Path, tuple[tuple[int, int], float]] = {}

    def _not_after(self, path: Path) -> float | None:
        try:
            status = os.stat(path)
        except OSError:
            return None
        stamp = (status.st_ino, status.st_mtime_ns)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == stamp:
            return seen[1]
        try:
            # The first certificate of the file: the leaf of a chain, or the CA itself.
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as error:
            logger.warning("cannot read certificate %s for its expiry: %s", path, error)
            return None
        not_after = certificate.not_valid_after_utc.timestamp()
        self._seen[path] = (stamp, not_after)
        return not_after

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "meshcore_tls_certificate_not_after_timestamp_seconds",
            "When the certificate expires (Unix time), by file: the service's cert or the CA",
            labels=["file"],
        )
        for name, path in self.files.items():
            not_after = self._not_after(path)
            if not_after is not None:
                family.add_metric([name], not_after)
        yield family


def observe_certificates(files: TlsFiles, registry: CollectorRegistry = REGISTRY) -> None:
    """Export the expiry of the service's certificate and of its CA certificate."""
    collector = per_registry(
        registry, "meshcore_tls_certificate", lambda: _registered(_CertificateCollector(), registry)
    )
    for name, path in (("cert", files.cert_file), ("ca", files.ca_file)):
        if path is not None:
            collector.files[name] = Path(path)


# -- backlogs of stored work --------------------------------------------------------------------


@dataclass(frozen=True)
class BacklogSnapshot:
    """How much stored work is waiting, and since when the oldest piece has (None: nothing)."""

    items: int
    oldest: datetime | None


class BacklogMonitor:
    """Probes one backlog (an outbox, queued deliveries) every ``interval`` seconds and exports
    ``meshcore_backlog_items`` and ``meshcore_backlog_oldest_age_seconds`` for it.

    A failed probe (the database is away) keeps the last values and is logged: the database's
    own alerts say that it is away, and a backlog that stops being measured must not read as an
    empty one.
    """

    def __init__(
        self,
        name: str,
        probe: Callable[[], Awaitable[BacklogSnapshot]],
        *,
        interval: float = 15.0,
        clock: Clock = SYSTEM_CLOCK,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name
        self._probe = probe
        self._interval = interval
        self._clock = clock
        items = gauge(
            registry,
            "meshcore_backlog_items",
            "Stored work not yet done (outbox rows, queued deliveries), by backlog",
            ["backlog"],
        )
        age = gauge(
            registry,
            "meshcore_backlog_oldest_age_seconds",
            "Age of the oldest waiting item of the backlog when last measured (0: empty)",
            ["backlog"],
        )
        self._items = items.labels(name)
        self._age = age.labels(name)

    async def run_once(self) -> BacklogSnapshot:
        snapshot = await self._probe()
        self._items.set(snapshot.items)
        if snapshot.oldest is None:
            self._age.set(0.0)
        else:
            oldest = as_utc(snapshot.oldest).timestamp()
            self._age.set(max(self._clock.time() - oldest, 0.0))
        return snapshot

    async def run(self) -> None:
        """Probe until cancelled."""
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning(
                    "backlog %s: probe failed (%s); keeping the last values", self.name, error
                )
            await self._clock.sleep(self._interval)


class SessionSource(Protocol):
    """What a backlog probe reads through (``meshcore.db.Database``; named structurally, since
    the database module registers its pool metrics here)."""

    def session(self) -> AbstractAsyncContextManager[AsyncSession]: ...


def table_backlog(
    database: SessionSource,
    created_at: _ColumnExpressionArgument[datetime],
    *waiting: _ColumnExpressionArgument[bool],
) -> Callable[[], Awaitable[BacklogSnapshot]]:
    """A ``BacklogMonitor`` probe counting the rows of ``created_at``'s table that match
    ``waiting`` (all rows when none is given), and the oldest ``created_at`` among them."""
    query = select(func.count(), func.min(created_at)).where(*waiting)

    async def probe() -> BacklogSnapshot:
        async with database.session() as session:
            count, oldest = (await session.execute(query)).one()
        return BacklogSnapshot(int(count), oldest)

    return probe
