"""PostgreSQL stopped for a few seconds, then started again under the running platform."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2
from meshcore.client_manager import BreakerSettings
from meshcore.resilience import RetryPolicy

from tests.faults.cluster import Cluster
from tests.faults.journey import OPERATOR, Clients, open_clients
from tests.faults.probes import eventually, probes_for, service_pids, timed
from tests.integration.notification.conftest import SmtpSink

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(150)]

DEADLINE_MS = 3_000
OUTAGE_SECONDS = 4.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_database_outage_fails_fast_with_unavailable_and_heals_without_restarts(
    clients: Clients, healthy_cluster: Cluster, smtp_sink: SmtpSink
) -> None:
    """While PostgreSQL is down every database call of every service answers UNAVAILABLE
    before its deadline, readiness goes NOT_SERVING (liveness stays SERVING); once it is back
    every call succeeds again, served by the very same processes, and the Celery worker
    delivers a new email."""
    user = await clients.new_user()
    probes = probes_for(clients, user)
    for name, probe in probes.items():
        before = await timed(probe(DEADLINE_MS))
        assert before.code == grpc.StatusCode.OK, (name, before)
    pids = service_pids(healthy_cluster)

    # A client that neither ejects replicas, opens breakers nor retries, so every call below
    # reaches a service once and measures that service's own answer, not a local decision.
    async with open_clients(
        healthy_cluster,
        health_checks=False,
        breaker=BreakerSettings(failure_threshold=10_000),
        retry=RetryPolicy(max_retries=0),
    ) as direct:
        direct_probes = probes_for(direct, user)
        healthy_cluster.postgres.stop()
        stopped_at = time.monotonic()
        outcomes = {}
        for name, probe in direct_probes.items():
            outcomes[name] = await timed(probe(DEADLINE_MS))
        readiness = {
            proc.label: await asyncio.to_thread(_wait_for_status, proc, NOT_SERVING)
            for proc in healthy_cluster.replicas()
        }
        liveness = {proc.label: proc.health("liveness") for proc in healthy_cluster.replicas()}
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        healthy_cluster.postgres.start()

    for name, outcome in outcomes.items():
        assert outcome.code == grpc.StatusCode.UNAVAILABLE, (name, outcome)
        assert outcome.seconds < DEADLINE_MS / 1000, (name, outcome)
    assert all(readiness.values()), readiness
    assert set(liveness.values()) == {SERVING}, liveness

    async def all_succeed() -> bool:
        results = [await timed(probe(DEADLINE_MS)) for probe in probes.values()]
        return all(result.code == grpc.StatusCode.OK for result in results)

    await eventually(all_succeed, within=45, what="every call to succeed after the restart")
    # Background work survived too: the worker's own pool reconnects and delivers a new email.
    recipient = f"after-pg-{uuid.uuid4().hex[:8]}@example.com"
    await clients.notification.send_email(
        recipient,
        "After the outage",
        "still here",
        idempotency_key=uuid.uuid4().hex,
        metadata=OPERATOR,
    )

    async def delivered() -> bool:
        return any(recipient.encode() in message for message in smtp_sink.messages)

    await eventually(delivered, within=45, what="an email sent after the outage to arrive")
    for proc in healthy_cluster.replicas():
        assert proc.health() == SERVING, proc.label
    assert service_pids(healthy_cluster) == pids  # nothing was restarted, nothing crashed


def _wait_for_status(proc: object, status: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.health() == status:  # type: ignore[attr-defined]
            return True
        time.sleep(0.1)
    return False
