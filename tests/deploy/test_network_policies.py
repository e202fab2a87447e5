"""The NetworkPolicies against the call graph: every edge is allowed, nothing else is.

A connection passes when an egress rule of the client's pod (if any policy selects it for
Egress) and an ingress rule of the server's pod (likewise for Ingress) both admit it, as the
NetworkPolicy API defines; peers are matched by pod and namespace labels. The pods are the
install's own workloads plus stand-ins outside the namespace: a client in another namespace,
the cluster DNS, and Istio's ingress gateway, istiod and Prometheus in istio-system.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest

from tests.deploy.support import K8S, NAMESPACE, SERVICES, Resource, build, of_kind
from tests.deploy.test_istio_policies import CALL_GRAPH, TCP_GRAPH

Pod = tuple[str, tuple[tuple[str, str], ...]]  # (namespace, labels)
Edge = tuple[str, str, int, str]  # (client, server, port, protocol)

OUTSIDE: dict[str, Pod] = {
    "client-elsewhere": ("shop", (("app", "shop"),)),
    "kube-dns": ("kube-system", (("k8s-app", "kube-dns"),)),
    "ingressgateway": ("istio-system", (("istio", "ingressgateway"),)),
    "istiod": ("istio-system", (("app", "istiod"),)),
    "prometheus": ("istio-system", (("app", "prometheus"),)),
}
ISTIO_SYSTEM = ("ingressgateway", "istiod", "prometheus")
VERIFIERS = ("project", "billing", "notification", "analytics")


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
    assert "ipBlock" not in peer, "no policy here names addresses"
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
    ports = {53, 8080, 15012, 15020, 5432, 6379, 1025, 8025}
    ports |= {p for pair in SERVICES.values() for p in pair[:2]}
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
    return edges


def test_base_allows_the_call_graph_and_nothing_else(kubectl: str) -> None:
    """Without Istio: the call graph, DNS, and the public and metrics ports from any pod
    outside the namespace."""
    resources = build(kubectl, K8S / "base")
    expected = call_graph_edges(resources, public_from=tuple(OUTSIDE))
    allowed = allowed_edges(resources)
    assert not expected - allowed, f"missing: {sorted(expected - allowed)}"
    assert not allowed - expected, f"extra: {sorted(allowed - expected)}"


@pytest.mark.parametrize("scenario", ["k8s", "canary"])
def test_istio_install_allows_the_call_graph_and_the_mesh_only(kubectl: str, scenario: str) -> None:
    """With Istio: the public entry is istio-system (gateway, Prometheus, merged metrics on
    15020), sidecars reach istiod, istiod fetches Auth's JWKS; nothing from elsewhere."""
    directory = K8S if scenario == "k8s" else K8S / "tests" / scenario
    resources = build(kubectl, directory)
    expected = call_graph_edges(resources, public_from=ISTIO_SYSTEM)
    expected |= {(c, svc, 15020, "TCP") for c, svc in product(ISTIO_SYSTEM, SERVICES)}
    ours = [name for name, (namespace, _) in pods(resources).items() if namespace == NAMESPACE]
    expected |= {(pod, "istiod", 15012, "TCP") for pod in ours}
    expected.add(("istiod", "auth", 8080, "TCP"))
    allowed = allowed_edges(resources)
    assert not expected - allowed, f"missing: {sorted(expected - allowed)}"
    assert not allowed - expected, f"extra: {sorted(allowed - expected)}"


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
