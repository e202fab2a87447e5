"""KubernetesServiceDiscovery over real HTTP against an API server imitation, and real gRPC
calls to the replicas it discovers."""

from __future__ import annotations

from pathlib import Path

import pytest
from meshcore.client_manager import GrpcClientManager
from meshcore.discovery.kubernetes import KubernetesServiceDiscovery
from meshcore.discovery.registry import NoHealthyEndpoint
from meshcore.mesh import create_service_mesh

from tests.integration.kubernetes.apiserver import FakeApiServer
from tests.integration.kubernetes.support import (
    NAMESPACE,
    endpoint_slice,
    eventually,
    kubeconfig_for,
    ready_endpoint,
    server_certificate,
)
from tests.replicas import ECHO, Replica, identity


def pods(discovery: KubernetesServiceDiscovery) -> list[str]:
    return sorted(i.id for i in discovery.get_instances("auth"))


async def test_grpc_calls_land_only_on_ready_replicas_as_the_watch_changes_them(
    apiserver: FakeApiServer,
    discovery: KubernetesServiceDiscovery,
    replicas: list[Replica],
) -> None:
    """r2 starts not ready and gets no calls; once ready it shares them; when r1 turns not
    ready every call lands on r2. Calls go through the client manager over real channels."""
    r1, r2 = replicas
    apiserver.upsert(endpoint_slice("auth-r1", [ready_endpoint(r1)], port=r1.port))
    apiserver.upsert(endpoint_slice("auth-r2", [ready_endpoint(r2, ready=False)], port=r2.port))
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    assert pods(discovery) == ["auth-r1"]

    async with GrpcClientManager(discovery=discovery, strategy="round-robin") as manager:
        echo = manager.service("auth").unary(ECHO, identity, identity, idempotent=True)
        assert {await echo(b"hi") for _ in range(4)} == {b"r1:hi"}

        apiserver.upsert(endpoint_slice("auth-r2", [ready_endpoint(r2)], port=r2.port))
        await eventually(lambda: pods(discovery) == ["auth-r1", "auth-r2"], "r2 registered")
        assert {await echo(b"hi") for _ in range(6)} == {b"r1:hi", b"r2:hi"}

        apiserver.upsert(endpoint_slice("auth-r1", [ready_endpoint(r1, ready=False)], port=r1.port))
        await eventually(lambda: pods(discovery) == ["auth-r2"], "r1 deregistered")
        before = r1.calls
        assert {await echo(b"hi") for _ in range(6)} == {b"r2:hi"}
        assert r1.calls == before

        apiserver.delete(NAMESPACE, "auth-r2")
        await eventually(lambda: pods(discovery) == [], "r2 deleted")
        with pytest.raises(NoHealthyEndpoint):
            discovery.get_endpoint("auth")

    listed = apiserver.requests[0]
    assert listed.params["labelSelector"] == "kubernetes.io/service-name=auth-service"
    assert listed.headers["authorization"] == "Bearer integration-sa-token"


async def test_dropped_watch_resumes_from_its_version_and_replays_what_it_missed(
    apiserver: FakeApiServer,
    discovery: KubernetesServiceDiscovery,
    replicas: list[Replica],
) -> None:
    """A watch cut mid-stream reconnects from the last resourceVersion: the change made while
    it was away arrives by replay, with no relist."""
    r1, r2 = replicas
    apiserver.upsert(endpoint_slice("auth-r1", [ready_endpoint(r1)], port=r1.port))
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await eventually(lambda: apiserver.watch_count == 1, "a watch open")

    apiserver.drop_watches()
    apiserver.upsert(endpoint_slice("auth-r2", [ready_endpoint(r2)], port=r2.port))
    await eventually(lambda: pods(discovery) == ["auth-r1", "auth-r2"], "the missed ADDED")
    assert watch.reconnects >= 1
    assert watch.lists == 1
    instance = next(i for i in discovery.get_instances("auth") if i.id == "auth-r2")
    assert instance.metadata["zone"] == "local-a"
    assert instance.metadata["node"] == "node-r2"
    assert (instance.host, instance.port) == ("127.0.0.1", r2.port)


async def test_gone_after_compaction_relists_and_the_registry_matches_the_store(
    apiserver: FakeApiServer,
    discovery: KubernetesServiceDiscovery,
    replicas: list[Replica],
) -> None:
    """Changes made while disconnected and then compacted away come back as a 410 ERROR
    event; discovery lists again and ends up with exactly what the store holds."""
    r1, r2 = replicas
    apiserver.upsert(endpoint_slice("auth-r1", [ready_endpoint(r1)], port=r1.port))
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await eventually(lambda: apiserver.watch_count == 1, "a watch open")

    apiserver.drop_watches()
    apiserver.delete(NAMESPACE, "auth-r1")
    apiserver.upsert(endpoint_slice("auth-r2", [ready_endpoint(r2)], port=r2.port))
    apiserver.compact()
    await eventually(lambda: watch.lists == 2, "a relist after 410")
    await eventually(lambda: pods(discovery) == ["auth-r2"], "the store's replicas")
    assert watch.resource_version == str(apiserver.resource_version)
    assert discovery.get_endpoint("auth").port == r2.port


async def test_bookmark_lets_a_reconnect_skip_the_relist_after_compaction(
    apiserver: FakeApiServer,
    discovery: KubernetesServiceDiscovery,
    replicas: list[Replica],
) -> None:
    """Other services' changes move the store on without touching this watch; a BOOKMARK
    carries the new version, so after compaction the reconnect still resumes (no 410)."""
    r1, _ = replicas
    apiserver.upsert(endpoint_slice("auth-r1", [ready_endpoint(r1)], port=r1.port))
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await eventually(lambda: apiserver.watch_count == 1, "a watch open")
    for index in range(3):
        apiserver.upsert(
            endpoint_slice(f"billing-{index}", [], port=4003, service="billing-service")
        )
    apiserver.bookmark()
    await eventually(
        lambda: watch.resource_version == str(apiserver.resource_version), "the bookmark"
    )

    apiserver.compact()
    apiserver.drop_watches()
    await eventually(lambda: watch.reconnects >= 1 and apiserver.watch_count == 1, "a rewatch")
    assert watch.lists == 1
    assert pods(discovery) == ["auth-r1"]


async def test_wrong_token_is_refused_and_nothing_is_registered(
    apiserver: FakeApiServer,
) -> None:
    """A 401 from the API server keeps the watch retrying and registers nothing."""
    async with KubernetesServiceDiscovery(
        kubeconfig_for(apiserver.url, token="stale"),
        backoff_initial_seconds=0.02,
        backoff_max_seconds=0.05,
    ) as discovery:
        watch = discovery.watch_kubernetes_service("auth-service")
        await eventually(lambda: watch.reconnects >= 2, "two refused attempts")
        assert watch.lists == 0
        assert discovery.get_instances("auth") == []
        assert getattr(watch.last_error, "status", None) == 401


async def test_https_api_server_is_verified_against_the_kubeconfig_ca(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """Over TLS the cluster CA from ``certificate-authority`` is trusted; without it the
    same server is refused and nothing registers."""
    import base64

    r1, _ = replicas
    context, ca_pem = server_certificate(tmp_path)
    apiserver = FakeApiServer("tls-token", ssl_context=context)
    await apiserver.start()
    try:
        apiserver.upsert(endpoint_slice("auth-r1", [ready_endpoint(r1)], port=r1.port))
        trusted = kubeconfig_for(
            apiserver.url,
            token="tls-token",
            **{"certificate-authority-data": base64.b64encode(ca_pem.encode()).decode()},
        )
        async with KubernetesServiceDiscovery(trusted) as discovery:
            watch = discovery.watch_kubernetes_service("auth-service")
            await watch.synced()
            assert pods(discovery) == ["auth-r1"]

        untrusted = kubeconfig_for(apiserver.url, token="tls-token")
        async with KubernetesServiceDiscovery(
            untrusted, backoff_initial_seconds=0.02, backoff_max_seconds=0.05
        ) as discovery:
            watch = discovery.watch_kubernetes_service("auth-service")
            await eventually(lambda: watch.reconnects >= 1, "a refused handshake")
            assert watch.lists == 0
            assert "CERTIFICATE_VERIFY_FAILED" in str(watch.last_error)
    finally:
        await apiserver.stop()


async def test_service_mesh_with_kubernetes_discovery_reports_the_watched_replicas(
    apiserver: FakeApiServer,
    discovery: KubernetesServiceDiscovery,
    replicas: list[Replica],
) -> None:
    """``create_service_mesh({"discovery": {"type": "kubernetes"}}, discovery=...)`` as the
    ADR wires it: health_check probes the watched pods over grpc.health.v1."""
    r1, r2 = replicas
    apiserver.upsert(endpoint_slice("auth-r1", [ready_endpoint(r1)], port=r1.port))
    apiserver.upsert(endpoint_slice("auth-r2", [ready_endpoint(r2)], port=r2.port))
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    config = {"discovery": {"type": "kubernetes"}, "mode": "standalone"}
    async with create_service_mesh(config, discovery=discovery) as mesh:
        report = await mesh.health_check()
        assert report["auth"]["status"] == "healthy"
        assert sorted(e["id"] for e in report["auth"]["endpoints"]) == ["auth-r1", "auth-r2"]
        await r2.stop()
        report = await mesh.health_check()
        assert report["auth"]["status"] == "degraded"
