"""meshcore's own metrics (meshcore.observability.runtime_metrics): each series exists from the
moment its owner does, and follows what the owner does."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.observability.runtime_metrics import (
    BacklogMonitor,
    breaker_state_listener,
    observe_breaker,
    observe_certificates,
    observe_pool,
    retries_counter,
    table_backlog,
)
from meshcore.pki import CertificateRequest, ensure_ca, issue
from meshcore.resilience.breaker import CircuitBreaker
from meshcore.testing import FakeClock
from meshcore.tls import TlsFiles
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, text


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_breaker_exports_its_state_and_transitions() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    breaker = CircuitBreaker(
        2,
        1_000,
        10_000,
        clock=clock,
        on_state_change=breaker_state_listener("billing", "10.0.0.7:4003", registry),
    )
    observe_breaker(breaker, "billing", "10.0.0.7:4003", registry)
    labels = {"peer_service": "billing", "endpoint": "10.0.0.7:4003"}
    state = "meshcore_circuit_breaker_state"
    assert value(registry, state, **labels, state="closed") == 1
    assert value(registry, state, **labels, state="open") == 0
    for _ in range(2):
        breaker.on_failure(breaker.acquire())
    assert value(registry, state, **labels, state="open") == 1
    assert value(registry, state, **labels, state="closed") == 0
    transitions = "meshcore_circuit_breaker_transitions_total"
    assert value(registry, transitions, peer_service="billing", state="open") == 1
    clock.advance(1.0)
    breaker.on_success(breaker.acquire())  # the half-open probe succeeds
    assert value(registry, state, **labels, state="closed") == 1
    assert value(registry, transitions, peer_service="billing", state="half-open") == 1
    assert value(registry, transitions, peer_service="billing", state="closed") == 1


def test_retries_are_counted_per_peer_from_zero() -> None:
    registry = CollectorRegistry()
    counter = retries_counter("auth", registry)
    assert value(registry, "meshcore_client_retries_total", peer_service="auth") == 0
    counter.inc()
    assert retries_counter("auth", registry) is counter
    assert value(registry, "meshcore_client_retries_total", peer_service="auth") == 1


async def test_pools_are_exported_by_name_and_summed(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    first = Database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", application_name="x")
    second = Database(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", application_name="x")
    for database in (first, second):
        observe_pool(database.engine.sync_engine.pool, "svc", registry)
    try:
        async with first.session() as session:
            await session.execute(text("SELECT 1"))  # holds a connection until the block ends
            assert value(registry, "meshcore_db_pool_connections", pool="svc", state="in_use") == 1
        assert value(registry, "meshcore_db_pool_connections", pool="svc", state="in_use") == 0
        assert value(registry, "meshcore_db_pool_connections", pool="svc", state="idle") >= 1  # type: ignore[operator]
        assert value(registry, "meshcore_db_pool_max_connections", pool="svc") == 30
    finally:
        await first.dispose()
        await second.dispose()


def test_certificate_expiry_is_read_from_the_files(tmp_path: Path) -> None:
    ca, _ = ensure_ca(tmp_path / "ca", days=30)
    out = tmp_path / "tls"
    issue(ca, out, CertificateRequest(service="billing", days=2))
    registry = CollectorRegistry()
    observe_certificates(TlsFiles(out / "tls.crt", out / "tls.key", out / "ca.crt"), registry)
    now = dt.datetime.now(dt.UTC).timestamp()
    name = "meshcore_tls_certificate_not_after_timestamp_seconds"
    cert = value(registry, name, file="cert")
    authority = value(registry, name, file="ca")
    assert cert is not None
    assert authority is not None
    assert cert - now == pytest.approx(2 * 86400, abs=600)
    assert authority - now == pytest.approx(30 * 86400, abs=600)


async def test_a_backlog_reports_its_size_and_oldest_age(tmp_path: Path) -> None:
    metadata = MetaData()
    outbox = Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("state", String(8)),
        Column("created_at", DateTime(timezone=True)),
    )
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    registry = CollectorRegistry()
    clock = FakeClock()
    monitor = BacklogMonitor(
        "outbox",
        table_backlog(database, outbox.c.created_at, outbox.c.state == "waiting"),
        interval=15,
        clock=clock,
        registry=registry,
    )
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        await monitor.run_once()
        assert value(registry, "meshcore_backlog_items", backlog="outbox") == 0
        assert value(registry, "meshcore_backlog_oldest_age_seconds", backlog="outbox") == 0
        wall = dt.datetime.fromtimestamp(clock.time(), dt.UTC)
        async with database.session() as session:
            await session.execute(
                insert(outbox),
                [
                    {"state": "waiting", "created_at": wall - dt.timedelta(seconds=90)},
                    {"state": "waiting", "created_at": wall - dt.timedelta(seconds=10)},
                    {"state": "done", "created_at": wall - dt.timedelta(hours=5)},
                ],
            )
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.2)  # the first pass runs at once
        assert value(registry, "meshcore_backlog_items", backlog="outbox") == 2
        age = value(registry, "meshcore_backlog_oldest_age_seconds", backlog="outbox")
        assert age == pytest.approx(90, abs=1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await database.dispose()
