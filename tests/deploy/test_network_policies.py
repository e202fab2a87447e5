"""The NetworkPolicies against the call graph: every edge is allowed, nothing else is.

A connection passes when an egress rule of the client's pod (if any policy selects it for
Egress) and an ingress rule of the server's pod (likewise for Ingress) both admit it, as the
NetworkPolicy API defines; peers are matched by pod and namespace labels. The pods are the
install's own workloads plus stand-ins outside the namespace: a client in another namespace,
the cluster DNS, Istio's ingress and egress gateways, istiod and Prometheus in istio-system,
and two addresses outside the cluster, the Kubernetes API server and a host on the internet
(only an `ipBlock` names those, as the API means it: cluster-external addresses).
"""

from __future__ import annotations

import ipaddress
import os
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    K8S,
    NAMESPACE,
    SERVICES,
    WORKER,
    WORKER_METRICS_PORT,
    Resource,
    build,
    calls_in_code,
    of_kind,
)
from tests.deploy.test_istio_policies import CALL_GRAPH, TCP_GRAPH

Pod = tuple[str, tuple[tuple[str, str], ...]]  # (namespace, labels)
Edge = tuple[str, str, int, str]  # (client, server, port, protocol)

OUTSIDE_CLUSTER = "<outside the cluster>"  # a "pod" there is an address: labels (("ip", ...),)
API_SERVER_IP = "172.18.0.2"
OUTSIDE: dict[str, Pod] = {
    "client-elsewhere": ("shop", (("app", "shop"),)),
    "kube-dns": ("kube-system", (("k8s-app", "kube-dns"),)),
    "ingressgateway": ("istio-system", (("istio", "ingressgateway"),)),
    "egressgateway": ("istio-system", (("istio", "egressgateway"),)),
    "istiod": ("istio-system", (("app", "istiod"),)),
    "prometheus": ("istio-system", (("app", "prometheus"),)),
    "kube-apiserver": (OUTSIDE_CLUSTER, (("ip", API_SERVER_IP),)),
    "internet-host": (OUTSIDE_CLUSTER, (("ip", "203.0.113.7"),)),
}
IN_CLUSTER = tuple(name for name, (ns, _) in OUTSIDE.items() if ns != OUTSIDE_CLUSTER)
ISTIO_SYSTEM = ("ingressgateway", "istiod", "prometheus")
VERIFIERS = ("project", "billing", "notification", "analytics")
API_PORTS = (443, 6443)
EGRESS_GATEWAY_PORT = 8443


def pods(resources: list[Resource]) -> dict[str, Pod]:
    """The install's pods by `app` label, plus the stand-ins outside the namespace."""
    found = {
        w["spec"]["template"]["metadata"]["labels"]["app"]: (
            NAMESPACE,
            tuple(sorted(w["spec"]["template"]["metadata"]["labels"].items())),
        )
        for kind in ("Deployment", "StatefulSet")
        for w in of_kind(resources, kind)
    }
    return {**found, **OUTSIDE}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and present not in expression["values"]:
            return False
        if operator == "NotIn" and present in expression["values"]:
            return False
        assert operator in {"In", "NotIn"}, operator
    return True


def peer_matches(peer: dict[str, Any], pod: Pod, policy_namespace: str) -> bool:
    namespace, labels = pod
    if namespace == OUTSIDE_CLUSTER or "ipBlock" in peer:
        block = peer.get("ipBlock")
        if block is None or namespace != OUTSIDE_CLUSTER:
            return False
        address = ipaddress.ip_address(dict(labels)["ip"])
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), dict(labels))


def port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return not ports or any(
        p.get("protocol", "TCP") == protocol and p.get("port", port) == port for p in ports
    )


def admitted(
    policies: list[Resource], pod: Pod, direction: str, peer: Pod, port: int, protocol: str
) -> bool:
    """Whether `pod`'s policies let traffic in (`ingress`, from `peer`) or out (`egress`, to it)."""
    namespace, labels = pod
    if namespace != NAMESPACE:
        return True  # not ours: no policy of this install governs it
    kind = "Ingress" if direction == "ingress" else "Egress"
    side = "from" if direction == "ingress" else "to"
    governing = [
        p
        for p in policies
        if selects(p["spec"]["podSelector"], dict(labels)) and kind in p["spec"]["policyTypes"]
    ]
    if not governing:
        return True
    return any(
        port_matches(rule, port, protocol)
        and (not rule.get(side) or any(peer_matches(x, peer, NAMESPACE) for x in rule[side]))
        for policy in governing
        for rule in policy["spec"].get(direction, [])
    )


def allowed_edges(resources: list[Resource]) -> set[Edge]:
    policies = of_kind(resources, "NetworkPolicy")
    everyone = pods(resources)
    ports = {53, 8080, 15012, 15020, 5432, 6379, 1025, 8025, 587, EGRESS_GATEWAY_PORT, *API_PORTS}
    ports |= {p for pair in SERVICES.values() for p in pair[:2]} | {WORKER_METRICS_PORT}
    edges = set()
    for (client, client_pod), (server, server_pod) in product(everyone.items(), repeat=2):
        if client == server or NAMESPACE not in (client_pod[0], server_pod[0]):
            continue
        for port, protocol in product(sorted(ports), ("TCP", "UDP")):
            if admitted(policies, client_pod, "egress", server_pod, port, protocol) and admitted(
                policies, server_pod, "ingress", client_pod, port, protocol
            ):
                edges.add((client, server, port, protocol))
    return edges


def call_graph_edges(resources: list[Resource], public_from: tuple[str, ...]) -> set[Edge]:
    """The call graph at L4: gRPC and JWKS calls, datastores, DNS and the public entry."""
    edges = {(c, s, SERVICES[s][0], "TCP") for c, s in CALL_GRAPH}
    edges |= {(v, "auth", 8080, "TCP") for v in VERIFIERS}
    edges |= {(c, app, int(port), "TCP") for c, app, port in TCP_GRAPH}
    ours = [name for name, (namespace, _) in pods(resources).items() if namespace == NAMESPACE]
    edges |= {(pod, "kube-dns", 53, protocol) for pod in ours for protocol in ("TCP", "UDP")}
    for client, svc in product(public_from, SERVICES):
        edges |= {(client, svc, port, "TCP") for port in SERVICES[svc][:2]}
    edges |= {(client, WORKER, WORKER_METRICS_PORT, "TCP") for client in public_from}
    return edges


def assert_exactly(expected: set[Edge], allowed: set[Edge]) -> None:
    assert not expected - allowed, f"missing: {sorted(expected - allowed)}"
    assert not allowed - expected, f"extra: {sorted(allowed - expected)}"


def test_base_allows_the_call_graph_and_nothing_else(kubectl: str) -> None:
    """Without Istio: the call graph, DNS, and the public and metrics ports from any pod
    outside the namespace; nothing leaves the cluster."""
    resources = build(kubectl, K8S / "base")
    assert_exactly(call_graph_edges(resources, public_from=IN_CLUSTER), allowed_edges(resources))


def api_clients() -> set[str]:
    """The workloads that watch EndpointSlices: those whose code calls a peer."""
    return {caller for caller, _, _ in calls_in_code()}


def test_discovery_adds_only_the_api_server_for_the_watching_services(kubectl: str) -> None:
    """k8s/tests/no-istio (components/kubernetes-discovery): the base's edges plus the API
    ports from exactly the four callers; by default to any address (the API server is not a
    pod, and its address is the cluster's)."""
    resources = build(kubectl, K8S / "tests" / "no-istio")
    expected = call_graph_edges(resources, public_from=IN_CLUSTER)
    outside = ("kube-apiserver", "internet-host")
    expected |= {(c, x, p, "TCP") for c, x, p in product(api_clients(), outside, API_PORTS)}
    assert api_clients() == {"project", "billing", "notification", "analytics"}
    assert_exactly(expected, allowed_edges(resources))


def test_the_api_server_range_narrows_to_the_control_plane(kubectl: str, tmp_path: Path) -> None:
    """The documented overlay patch (docs/deployment.md) leaves the API server reachable and
    nothing else outside the cluster."""
    overlay = tmp_path / "install"
    overlay.mkdir()
    base = os.path.relpath(K8S / "tests" / "no-istio", overlay)
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{base}]\n"
        "patches:\n"
        "  - target: {kind: NetworkPolicy, name: kubernetes-api}\n"
        "    patch: |-\n"
        "      - op: replace\n"
        "        path: /spec/egress/0/to/0/ipBlock/cidr\n"
        f"        value: {API_SERVER_IP}/32\n"
    )
    resources = build(kubectl, overlay)
    expected = call_graph_edges(resources, public_from=IN_CLUSTER)
    expected |= {(c, "kube-apiserver", p, "TCP") for c, p in product(api_clients(), API_PORTS)}
    assert_exactly(expected, allowed_edges(resources))


@pytest.mark.parametrize("scenario", ["k8s", "canary"])
def test_istio_install_allows_the_call_graph_and_the_mesh_only(kubectl: str, scenario: str) -> None:
    """With Istio: the public entry is istio-system (gateway, Prometheus, merged metrics on
    15020), sidecars reach istiod, istiod fetches Auth's JWKS, the worker reaches the egress
    gateway (its SMTP relay route); nothing from elsewhere, nothing to the API server."""
    directory = K8S if scenario == "k8s" else K8S / "tests" / scenario
    resources = build(kubectl, directory)
    expected = call_graph_edges(resources, public_from=ISTIO_SYSTEM)
    scraped = [*SERVICES, WORKER]
    expected |= {(c, svc, 15020, "TCP") for c, svc in product(ISTIO_SYSTEM, scraped)}
    ours = [name for name, (namespace, _) in pods(resources).items() if namespace == NAMESPACE]
    expected |= {(pod, "istiod", 15012, "TCP") for pod in ours}
    expected.add(("istiod", "auth", 8080, "TCP"))
    expected.add(("notification-worker", "egressgateway", EGRESS_GATEWAY_PORT, "TCP"))
    assert_exactly(expected, allowed_edges(resources))


def test_the_evaluator_refuses_what_no_policy_allows(kubectl: str) -> None:
    """A check that can fail: without the billing policy Project no longer reaches Billing, and
    without allow-dns no pod resolves names."""
    resources = build(kubectl, K8S / "base")

    def without(name: str) -> list[Resource]:
        return [
            r for r in resources if (r["kind"], r["metadata"]["name"]) != ("NetworkPolicy", name)
        ]

    assert ("project", "billing", 4003, "TCP") in allowed_edges(resources)
    assert ("project", "billing", 4003, "TCP") not in allowed_edges(without("billing"))
    assert not {e for e in allowed_edges(without("allow-dns")) if e[1] == "kube-dns"}
