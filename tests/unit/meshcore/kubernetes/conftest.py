"""Fixtures: the scripted API (``fake_api.FakeApi``), a fake clock, and discovery on both."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from meshcore.discovery.kubeconfig import KubeConfig
from meshcore.discovery.kubernetes import KubernetesServiceDiscovery
from meshcore.testing import FakeClock

from tests.unit.meshcore.kubernetes.fake_api import NAMESPACE, FakeApi


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def discovery(api: FakeApi, clock: FakeClock) -> AsyncIterator[KubernetesServiceDiscovery]:
    found = KubernetesServiceDiscovery(
        KubeConfig(server="https://kube.test:6443", token="sa-token", namespace=NAMESPACE),
        health_check_interval=15_000,
        clock=clock,
        transport=api.transport,
        backoff_initial_seconds=1.0,
        backoff_max_seconds=8.0,
        rng=random.Random(7),
    )
    try:
        yield found
    finally:
        await found.close()
