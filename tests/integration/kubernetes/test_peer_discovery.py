"""SERVICE_DISCOVERY=kubernetes as a service wires it: ``GrpcClientManager.from_settings`` with
the pod's in-cluster configuration (service account token, cluster CA, namespace files) against
the API server imitation over HTTPS, and real gRPC calls to the pods it finds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from meshcore.client_manager import GrpcClientManager
from meshcore.discovery.kubeconfig import KubeConfig
from meshcore.discovery.kubernetes import KubernetesServiceDiscovery
from meshcore.settings import ServiceSettings

from tests.integration.kubernetes.apiserver import FakeApiServer
from tests.integration.kubernetes.support import (
    NAMESPACE,
    endpoint_slice,
    eventually,
    ready_endpoint,
    server_certificate,
)
from tests.replicas import ECHO, Replica, identity

TOKEN = "pod-service-account-token"


@dataclass(frozen=True, kw_only=True)
class CallerSettings(ServiceSettings):
    """A service that calls Auth, as Project or Billing do."""

    service_name: ClassVar[str] = "caller"
    peer_defaults: ClassVar[Mapping[str, str]] = {"auth": "auth:4000"}


@dataclass
class Cluster:
    apiserver: FakeApiServer
    kube_config: KubeConfig


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """The API server over TLS, and what the kubelet mounts into a pod of namespace zoptal."""
    context, ca_pem = server_certificate(tmp_path)
    apiserver = FakeApiServer(TOKEN, ssl_context=context)
    await apiserver.start()
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text(TOKEN + "\n")
    (mounted / "ca.crt").write_text(ca_pem)
    (mounted / "namespace").write_text(NAMESPACE)
    environ = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(apiserver.port),
    }
    try:
        yield Cluster(apiserver, KubeConfig.in_cluster(environ, root=str(mounted)))
    finally:
        await apiserver.stop()


def watched(manager: GrpcClientManager) -> KubernetesServiceDiscovery:
    assert isinstance(manager.discovery, KubernetesServiceDiscovery)
    return manager.discovery


def addresses(manager: GrpcClientManager) -> list[str]:
    return sorted(i.address for i in manager.discovery.get_instances("auth"))


async def test_calls_balance_per_call_over_the_pods_of_the_service_the_address_names(
    cluster: Cluster, replicas: list[Replica]
) -> None:
    """AUTH_ADDR=auth:4000 (a ClusterIP name this host cannot even resolve) names Service
    `auth`; its two ready pods both take calls from one manager, each call choosing; a pod
    turning not ready stops getting calls; closing the manager stops the watch."""
    r1, r2 = replicas
    for replica in replicas:
        cluster.apiserver.upsert(
            endpoint_slice(
                f"auth-{replica.name}", [ready_endpoint(replica)], port=replica.port, service="auth"
            )
        )
    settings = CallerSettings.from_env({"SERVICE_DISCOVERY": "kubernetes"})
    manager = GrpcClientManager.from_settings(
        settings, kube_config=cluster.kube_config, interceptors=[], strategy="round-robin"
    )
    assert addresses(manager) == ["auth:4000"], "the address serves until the first list"
    echo = manager.service("auth").unary(ECHO, identity, identity, idempotent=True)
    manager.ensure_started()
    (watch,) = watched(manager).watches
    await watch.synced()
    assert addresses(manager) == sorted(f"127.0.0.1:{r.port}" for r in replicas)

    answers = [await echo(b"hi") for _ in range(10)]
    assert answers.count(b"r1:hi") == answers.count(b"r2:hi") == 5

    cluster.apiserver.upsert(
        endpoint_slice("auth-r1", [ready_endpoint(r1, ready=False)], port=r1.port, service="auth")
    )
    await eventually(lambda: addresses(manager) == [f"127.0.0.1:{r2.port}"], "r1 leaves")
    before = r1.calls
    assert {await echo(b"hi") for _ in range(4)} == {b"r2:hi"}
    assert r1.calls == before

    await manager.close()
    assert not watch.running
    listed = cluster.apiserver.requests[0]
    assert listed.path == f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"
    assert listed.params["labelSelector"] == "kubernetes.io/service-name=auth"
    assert listed.headers["authorization"] == f"Bearer {TOKEN}"


async def test_without_api_access_the_address_keeps_serving(
    cluster: Cluster, replicas: list[Replica]
) -> None:
    """The Role or the NetworkPolicy missing (here: the API server refuses the token): the
    watch keeps retrying, saying why, and calls go to <SVC>_ADDR as with static discovery."""
    r1, r2 = replicas
    cluster.apiserver.token = "another-token"
    cluster.apiserver.upsert(
        endpoint_slice("auth-r2", [ready_endpoint(r2)], port=r2.port, service="auth")
    )
    settings = CallerSettings.from_env(
        {"SERVICE_DISCOVERY": "kubernetes", "AUTH_ADDR": f"localhost:{r1.port}"}
    )
    async with GrpcClientManager.from_settings(
        settings, kube_config=cluster.kube_config, interceptors=[]
    ) as manager:
        echo = manager.service("auth").unary(ECHO, identity, identity, idempotent=True)
        (watch,) = watched(manager).watches
        assert await echo(b"hi") == b"r1:hi"
        await eventually(lambda: watch.last_error is not None, "the refused list")
        assert getattr(watch.last_error, "status", None) == 401
        assert {await echo(b"hi") for _ in range(4)} == {b"r1:hi"}
        assert watch.lists == 0
        assert r2.calls == 0


async def test_istio_mode_dials_the_address_and_opens_no_watch(
    cluster: Cluster,
) -> None:
    """Under Istio the setting stays static: no discovery object watches anything."""
    settings = CallerSettings.from_env({"MESH_MODE": "istio"})
    async with GrpcClientManager.from_settings(
        settings, kube_config=cluster.kube_config, interceptors=[]
    ) as manager:
        assert not isinstance(manager.discovery, KubernetesServiceDiscovery)
        assert addresses(manager) == ["auth:4000"]
        await asyncio.sleep(0.05)
    assert cluster.apiserver.requests == []
