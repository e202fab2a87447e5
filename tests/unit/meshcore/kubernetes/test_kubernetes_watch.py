"""KubernetesServiceDiscovery against a scripted API: list, watch, bookmarks, 410, backoff."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import httpx
import pytest
from meshcore.discovery.kubeconfig import KubeConfig
from meshcore.discovery.kubernetes import KubernetesServiceDiscovery, instances_from_slice
from meshcore.discovery.registry import NoHealthyEndpoint, ServiceDiscovery
from meshcore.testing import FakeClock

from tests.unit.meshcore.kubernetes.fake_api import (
    NAMESPACE,
    FakeApi,
    endpoint,
    endpoint_slice,
    idle,
    status,
    until,
)


def ids(discovery: ServiceDiscovery, service: str = "auth") -> list[str]:
    return sorted(i.id for i in discovery.get_instances(service))


async def test_first_list_registers_only_ready_endpoints_on_the_grpc_port(
    api: FakeApi, discovery: KubernetesServiceDiscovery
) -> None:
    """Ready (or unknown) endpoints register under their pod name, on the port named grpc."""
    api.slices["auth-abc"] = endpoint_slice(
        "auth-abc",
        [
            endpoint("10.0.0.1", "auth-1", zone="eu-west-1a", node="node-a"),
            endpoint("10.0.0.2", "auth-2", ready=False),
            endpoint("10.0.0.3", "auth-3", ready=True, terminating=True),
            endpoint("10.0.0.4", "auth-4", ready=None),
        ],
    )
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()

    assert ids(discovery) == ["auth-1", "auth-4"]
    first = next(i for i in discovery.get_instances("auth") if i.id == "auth-1")
    assert (first.host, first.port) == ("10.0.0.1", 4000)
    assert first.metadata["zone"] == "eu-west-1a"
    assert first.metadata["node"] == "node-a"
    assert first.metadata["namespace"] == NAMESPACE
    assert {discovery.get_endpoint("auth-service").id for _ in range(4)} == {"auth-1", "auth-4"}
    listed = api.lists[0]
    assert listed.url.path == "/apis/discovery.k8s.io/v1/namespaces/zoptal/endpointslices"
    assert listed.url.params["labelSelector"] == "kubernetes.io/service-name=auth-service"
    assert listed.headers["Authorization"] == "Bearer sa-token"


async def test_watch_resumes_from_the_list_and_applies_added_modified_deleted(
    api: FakeApi, discovery: KubernetesServiceDiscovery
) -> None:
    """Events after the list add, change and remove replicas; the registry follows each."""
    api.slices["auth-a"] = endpoint_slice("auth-a", [endpoint("10.0.0.1", "auth-1")])
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await until(lambda: len(api.streams) == 1, "a watch")
    stream = api.streams[0]
    assert stream.params["resourceVersion"] == "100"
    assert stream.params["allowWatchBookmarks"] == "true"

    stream.send("ADDED", endpoint_slice("auth-b", [endpoint("10.0.1.1", "auth-2")]))
    await until(lambda: ids(discovery) == ["auth-1", "auth-2"], "auth-2 added")

    stream.send("MODIFIED", endpoint_slice("auth-a", [endpoint("10.0.0.1", "auth-1", ready=False)]))
    await until(lambda: ids(discovery) == ["auth-2"], "auth-1 no longer ready")
    assert discovery.get_endpoint("auth").id == "auth-2"

    stream.send("DELETED", endpoint_slice("auth-b", []))
    await until(lambda: ids(discovery) == [], "auth-b deleted")
    with pytest.raises(NoHealthyEndpoint):
        discovery.get_endpoint("auth")


async def test_replica_that_stays_keeps_its_health_history(
    api: FakeApi, discovery: KubernetesServiceDiscovery
) -> None:
    """A MODIFIED slice does not readmit an ejected replica nor replace its object."""
    api.slices["auth-a"] = endpoint_slice(
        "auth-a", [endpoint("10.0.0.1", "auth-1"), endpoint("10.0.0.2", "auth-2")]
    )
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    ejected = next(i for i in discovery.get_instances("auth") if i.id == "auth-1")
    for _ in range(discovery.unhealthy_threshold):
        discovery.record_check(ejected, passed=False)
    await until(lambda: len(api.streams) == 1, "a watch")

    api.streams[0].send(
        "MODIFIED",
        endpoint_slice(
            "auth-a",
            [endpoint("10.0.0.1", "auth-1", zone="eu-west-1b"), endpoint("10.0.0.2", "auth-2")],
        ),
    )
    await until(lambda: ejected.metadata.get("zone") == "eu-west-1b", "metadata update")
    assert next(i for i in discovery.get_instances("auth") if i.id == "auth-1") is ejected
    assert not ejected.healthy
    assert [i.id for i in discovery.healthy_instances("auth")] == ["auth-2"]


async def test_health_service_named_by_the_client_manager_survives_updates_and_new_pods(
    api: FakeApi, discovery: KubernetesServiceDiscovery
) -> None:
    """A typed client's health service name, set on the replicas it found, is kept when a
    slice changes and given to pods that appear later."""
    api.slices["auth-a"] = endpoint_slice("auth-a", [endpoint("10.0.0.1", "auth-1")])
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    (first,) = discovery.get_instances("auth")
    first.metadata = {**first.metadata, "health_service": "zoptal.auth.v1.AuthService"}
    await until(lambda: len(api.streams) == 1, "a watch")

    api.streams[0].send(
        "MODIFIED",
        endpoint_slice("auth-a", [endpoint("10.0.0.1", "auth-1"), endpoint("10.0.0.2", "auth-2")]),
    )
    await until(lambda: len(discovery.get_instances("auth")) == 2, "auth-2 added")
    assert {i.id: i.metadata.get("health_service") for i in discovery.get_instances("auth")} == {
        "auth-1": "zoptal.auth.v1.AuthService",
        "auth-2": "zoptal.auth.v1.AuthService",
    }


def test_slice_with_an_impossible_port_is_skipped_not_fatal() -> None:
    """A port out of range yields no replica instead of an error that would stop the watch."""
    found = instances_from_slice(
        "auth",
        endpoint_slice("a", [endpoint("10.0.0.1", "auth-1")], ports=[("grpc", 70000)]),
    )
    assert found == []


async def test_bookmark_moves_the_resume_point_without_a_relist(
    api: FakeApi, discovery: KubernetesServiceDiscovery
) -> None:
    """After a BOOKMARK the next watch starts from the bookmark's resourceVersion."""
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await until(lambda: len(api.streams) == 1, "a watch")
    api.streams[0].send(
        "BOOKMARK",
        {"kind": "EndpointSlice", "metadata": {"resourceVersion": "250"}},
    )
    api.streams[0].end()

    await until(lambda: len(api.streams) == 2, "a second watch")
    assert api.streams[1].params["resourceVersion"] == "250"
    assert len(api.lists) == 1
    assert watch.resource_version == "250"


@pytest.mark.parametrize("how", ["error event", "http status"])
async def test_gone_relists_at_once_and_drops_replicas_that_vanished(
    api: FakeApi, clock: FakeClock, discovery: KubernetesServiceDiscovery, how: str
) -> None:
    """410 Gone (as an ERROR event or as the HTTP status) relists without waiting."""
    api.slices["auth-a"] = endpoint_slice(
        "auth-a", [endpoint("10.0.0.1", "auth-1"), endpoint("10.0.0.2", "auth-2")]
    )
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await until(lambda: len(api.streams) == 1, "a watch")
    # While the watch was away, auth-1 went and the history was compacted.
    api.slices["auth-a"] = endpoint_slice("auth-a", [endpoint("10.0.0.2", "auth-2")])
    api.resource_version = "900"
    gone = status(410, "Expired", "too old resource version: 100 (800)")
    if how == "error event":
        api.streams[0].send("ERROR", gone)
    else:
        api.streams[0].drop()
        api.failures.append((410, gone))

    if how == "http status":
        # The drop backs off first; the 410 that follows relists with no further wait.
        await until(lambda: watch.reconnects == 1, "the drop noticed")
        clock.advance(discovery.backoff_initial_seconds)
    await until(lambda: watch.lists == 2, "a relist")
    assert ids(discovery) == ["auth-2"]
    await until(lambda: len(api.streams) == 2, "a new watch")
    assert api.streams[1].params["resourceVersion"] == "900"


async def test_gone_again_straight_after_a_relist_backs_off(
    api: FakeApi, clock: FakeClock, discovery: KubernetesServiceDiscovery
) -> None:
    """A 410 loop (the fresh list's version is refused too) waits instead of spinning."""
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await until(lambda: len(api.streams) == 1, "a watch")
    gone = status(410, "Expired", "too old resource version")
    api.failures.extend([(200, {"metadata": {"resourceVersion": "5"}}), (410, gone)])
    api.streams[0].send("ERROR", gone)
    await until(lambda: watch.lists == 2, "a relist after the first 410")
    await until(lambda: not api.failures, "the watch from the relist refused")
    await idle()
    assert len(api.requests) == 4
    assert watch.lists == 2
    clock.advance(discovery.backoff_initial_seconds)
    await until(lambda: watch.lists == 3, "a relist after the backoff")


async def test_dropped_watch_reconnects_after_jittered_exponential_backoff(
    api: FakeApi, clock: FakeClock, discovery: KubernetesServiceDiscovery
) -> None:
    """Each failed reconnect doubles the wait (1 s, 2 s, 4 s, capped at 8 s), jittered to
    half-to-full; the replicas last seen stay registered throughout."""
    api.slices["auth-a"] = endpoint_slice("auth-a", [endpoint("10.0.0.1", "auth-1")])
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await until(lambda: len(api.streams) == 1, "a watch")
    api.failures.extend([(503, status(503, "ServiceUnavailable"))] * 4)
    api.streams[0].drop()

    for ceiling in (1.0, 2.0, 4.0, 8.0, 8.0):
        requests = len(api.requests)
        await idle()
        assert len(api.requests) == requests, "retried before any time passed"
        clock.advance(ceiling / 2 - 0.01)
        await idle()
        assert len(api.requests) == requests, f"retried before half of {ceiling}s"
        clock.advance(ceiling / 2 + 0.01)
        await until(lambda: len(api.requests) > requests, f"retry within {ceiling}s")  # noqa: B023
        assert len(api.requests) == requests + 1
        assert ids(discovery) == ["auth-1"]

    assert watch.reconnects == 5
    assert api.streams[-1].params["resourceVersion"] == "100"
    assert len(api.lists) == 1


async def test_watch_that_ends_at_once_with_nothing_backs_off_instead_of_spinning(
    api: FakeApi, clock: FakeClock, discovery: KubernetesServiceDiscovery
) -> None:
    """An empty watch closed immediately waits a backoff before the next one."""
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    await until(lambda: len(api.streams) == 1, "a watch")
    api.streams[0].end()
    await idle()
    assert len(api.streams) == 1
    clock.advance(discovery.backoff_initial_seconds)
    await until(lambda: len(api.streams) == 2, "a watch after the backoff")


async def test_forbidden_is_logged_with_the_missing_permission_and_retried(
    api: FakeApi,
    clock: FakeClock,
    discovery: KubernetesServiceDiscovery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without RBAC the list fails with 403, the log names the permission, and a later list
    (once the Role exists) succeeds."""
    api.failures.append((403, status(403, "Forbidden", "cannot list endpointslices")))
    api.slices["auth-a"] = endpoint_slice("auth-a", [endpoint("10.0.0.1", "auth-1")])
    with caplog.at_level(logging.WARNING):
        watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
        await until(lambda: watch.reconnects == 1, "a failed list")
    assert "get/list/watch on endpointslices" in caplog.text
    assert ids(discovery) == []
    clock.advance(discovery.backoff_initial_seconds)
    await watch.synced()
    assert ids(discovery) == ["auth-1"]


async def test_rotated_service_account_token_is_sent_after_the_refresh_interval(
    api: FakeApi, clock: FakeClock, tmp_path: Path
) -> None:
    """The token file is re-read once a minute, so a kubelet-rotated token is picked up."""
    token = tmp_path / "token"
    token.write_text("first-token\n")
    config = KubeConfig(server="https://kube.test", token_file=str(token), namespace=NAMESPACE)
    async with KubernetesServiceDiscovery(
        config, clock=clock, transport=api.transport, rng=random.Random(1)
    ) as discovery:
        watch = discovery.watch_kubernetes_service("auth-service")
        await watch.synced()
        await until(lambda: len(api.streams) == 1, "a watch")
        token.write_text("second-token\n")
        api.streams[0].drop()
        await until(lambda: watch.reconnects == 1, "the drop noticed")
        clock.advance(1.0)  # the reconnect, still within the minute
        await until(lambda: len(api.streams) == 2, "a reconnect")
        clock.advance(60.0)
        api.streams[1].drop()
        await until(lambda: watch.reconnects == 2, "the second drop noticed")
        clock.advance(1.0)
        await until(lambda: len(api.streams) == 3, "a reconnect after a minute")

    sent = [r.headers["Authorization"] for r in api.requests]
    assert sent == ["Bearer first-token"] * 3 + ["Bearer second-token"]


async def test_endpoint_listed_in_two_slices_registers_once(
    api: FakeApi, discovery: KubernetesServiceDiscovery
) -> None:
    """While the controller moves an endpoint between slices it counts once."""
    api.slices["auth-a"] = endpoint_slice("auth-a", [endpoint("10.0.0.1", "auth-1")])
    api.slices["auth-b"] = endpoint_slice(
        "auth-b", [endpoint("10.0.0.1", "auth-1"), endpoint("10.0.0.2", "auth-2")]
    )
    watch = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    await watch.synced()
    assert ids(discovery) == ["auth-1", "auth-2"]
    await until(lambda: len(api.streams) == 1, "a watch")
    api.streams[0].send("DELETED", endpoint_slice("auth-a", []))
    await idle()
    assert ids(discovery) == ["auth-1", "auth-2"]


def test_slice_without_a_grpc_port_contributes_nothing_but_a_lone_unnamed_port_counts() -> None:
    """The port is the one named grpc; a single unnamed port is accepted as well."""
    endpoints = [endpoint("10.0.0.1", "auth-1")]
    assert instances_from_slice("auth", endpoint_slice("a", endpoints, ports=[("http", 80)])) == []
    lone = instances_from_slice("auth", endpoint_slice("a", endpoints, ports=[("", 4000)]))
    assert [(i.id, i.port) for i in lone] == [("auth-1", 4000)]
    named = instances_from_slice(
        "auth", endpoint_slice("a", endpoints, ports=[("h2", 5000)]), port_name="h2"
    )
    assert [i.port for i in named] == [5000]


def test_endpoint_without_a_pod_is_named_by_its_address_and_health_service_is_kept() -> None:
    """Endpoints without a targetRef get host:port ids; the health service lands in metadata."""
    bare = {"addresses": ["10.9.9.9"], "conditions": {"ready": True}}
    found = instances_from_slice(
        "auth-service",
        endpoint_slice("a", [bare]),
        health_service="zoptal.auth.v1.AuthService",
    )
    assert [i.id for i in found] == ["10.9.9.9:4000"]
    assert found[0].metadata["health_service"] == "zoptal.auth.v1.AuthService"


async def test_seed_options_dict_sets_the_health_check_interval(api: FakeApi) -> None:
    """``KubernetesServiceDiscovery(kube_config, {"healthCheckInterval": 15000})`` as in the
    seed; unknown options are refused."""
    config = KubeConfig(server="https://kube.test")
    found = KubernetesServiceDiscovery(config, {"healthCheckInterval": 15000})
    assert found.health_check_interval_seconds == 15.0
    with pytest.raises(ValueError, match="healthCheckIntervl"):
        KubernetesServiceDiscovery(config, {"healthCheckIntervl": 15000})


async def test_one_service_is_watched_once(discovery: KubernetesServiceDiscovery) -> None:
    """Watching again returns the same watch; the same service from elsewhere is refused."""
    first = discovery.watch_kubernetes_service("auth-service", NAMESPACE)
    assert discovery.watch_kubernetes_service("auth-service", NAMESPACE) is first
    with pytest.raises(ValueError, match="already watched"):
        discovery.watch_kubernetes_service("auth-service", "other")
    assert discovery.watches == [first]


async def test_close_stops_the_watches_and_keeps_the_last_replicas(
    api: FakeApi, clock: FakeClock
) -> None:
    """After close nothing watches any more; what was known stays for the caller to use."""
    api.slices["auth-a"] = endpoint_slice("auth-a", [endpoint("10.0.0.1", "auth-1")])
    discovery = KubernetesServiceDiscovery(
        KubeConfig(server="https://kube.test", namespace=NAMESPACE),
        clock=clock,
        transport=api.transport,
    )
    watch = discovery.watch_kubernetes_service("auth-service")
    await watch.synced()
    await discovery.close()
    assert not watch.running
    assert ids(discovery) == ["auth-1"]
    requests = len(api.requests)
    clock.advance(3600)
    await idle()
    assert len(api.requests) == requests


def test_watching_outside_an_event_loop_says_what_is_needed() -> None:
    """Called from synchronous code, the watch explains that it needs a running loop."""
    found = KubernetesServiceDiscovery(KubeConfig(server="https://kube.test"))
    with pytest.raises(RuntimeError, match="running event loop"):
        found.watch_kubernetes_service("auth-service")


async def test_watch_needs_a_running_loop_only_when_started() -> None:
    """Constructing discovery opens nothing; ``httpx`` is only used once a watch runs."""
    found = KubernetesServiceDiscovery(KubeConfig(server="https://kube.test"))
    assert found.watches == []
    assert isinstance(found.api.config, KubeConfig)
    assert found.api._client is None
    await found.close()


def test_non_status_error_bodies_still_raise_typed_errors() -> None:
    """A proxy's HTML 502 or a bare 410 still become KubeApiError / ResourceExpired."""
    from meshcore.discovery.kube_api import KubeApiError, ResourceExpired, _error_from

    bare_gone = _error_from(410, b"gone")
    assert isinstance(bare_gone, ResourceExpired)
    proxy = _error_from(502, b"<html>bad gateway</html>")
    assert isinstance(proxy, KubeApiError)
    assert not isinstance(proxy, ResourceExpired)
    assert proxy.status == 502
    assert isinstance(httpx.ReadError("x"), httpx.HTTPError)
