"""Fixtures: the HTTP API server imitation, and discovery on it (replicas: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from meshcore.discovery.kubernetes import KubernetesServiceDiscovery

from tests.integration.kubernetes.apiserver import FakeApiServer
from tests.integration.kubernetes.support import TOKEN, kubeconfig_for


@pytest.fixture
async def apiserver() -> AsyncIterator[FakeApiServer]:
    server = FakeApiServer(TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def discovery(apiserver: FakeApiServer) -> AsyncIterator[KubernetesServiceDiscovery]:
    found = KubernetesServiceDiscovery(
        kubeconfig_for(apiserver.url),
        {"healthCheckInterval": 15000},
        backoff_initial_seconds=0.02,
        backoff_max_seconds=0.2,
    )
    try:
        yield found
    finally:
        await found.close()
