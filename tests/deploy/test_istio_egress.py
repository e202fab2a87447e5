"""What leaves each workload under Istio: its Sidecar's hosts against the call graph, and the
notification worker's SMTP through the egress gateway, followed the way Envoy reads the routes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.istio_schemas import ISTIO_SCHEMAS
from tests.deploy.support import K8S, NAMESPACE, SERVICES, Resource, build, named, of_kind
from tests.deploy.test_istio_policies import CALL_GRAPH, TCP_GRAPH, fqdn

EGRESS_GATEWAY = "istio-egressgateway.istio-system.svc.cluster.local"
WORKER = "notification-worker"
WORKER_PRINCIPAL = f"cluster.local/ns/{NAMESPACE}/sa/{WORKER}"
SMTP_PORT = 587
DEFAULT_RELAY = "smtp.example.com"
SCENARIO_RELAY = "smtp-relay.example.net"


def callees() -> dict[str, set[str]]:
    """Workload -> the in-mesh services it calls: gRPC (CALL_GRAPH, JWKS included: Auth's
    Service) and TCP (datastores, Mailpit)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for caller, callee in CALL_GRAPH:
        graph[caller].add(callee)
    for caller, app, _ in TCP_GRAPH:
        graph[caller].add(app)
    return graph


def workloads(resources: list[Resource]) -> set[str]:
    return {
        w["spec"]["template"]["metadata"]["labels"]["app"]
        for kind in ("Deployment", "StatefulSet")
        for w in of_kind(resources, kind)
    }


def sidecar_hosts(resources: list[Resource]) -> dict[str, set[str]]:
    """The app each Sidecar selects -> the hosts of its (single) egress listener."""
    found: dict[str, set[str]] = {}
    for sidecar in of_kind(resources, "Sidecar"):
        spec = sidecar["spec"]
        app = spec["workloadSelector"]["labels"]["app"]
        assert app not in found, f"two Sidecars select {app}: Istio would pick one at random"
        (listener,) = spec["egress"]
        assert "port" not in listener, "one listener for every port"
        assert spec["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}, app
        found[app] = set(listener["hosts"])
    return found


def relay_of(resources: list[Resource]) -> str:
    hosts: list[str] = named(resources, "ServiceEntry", "smtp-relay")["spec"]["hosts"]
    assert len(hosts) == 1
    return hosts[0]


@pytest.mark.parametrize("scenario", ["k8s", "canary", "fault-injection", "smtp-relay"])
def test_each_sidecar_reaches_exactly_its_call_graph_and_istio_system(
    kubectl: str, scenario: str
) -> None:
    """Every workload has one Sidecar; its hosts are the Services it calls (nothing more, none
    missing) plus istio-system, and the worker's also the SMTP relay; REGISTRY_ONLY."""
    directory = K8S if scenario == "k8s" else K8S / "tests" / scenario
    resources = build(kubectl, directory)
    hosts = sidecar_hosts(resources)
    assert set(hosts) == workloads(resources)
    graph = callees()
    for app, found in hosts.items():
        expected = {f"./{fqdn(callee)}" for callee in graph.get(app, set())} | {"istio-system/*"}
        if app == WORKER:
            expected.add(f"./{relay_of(resources)}")
        assert found == expected, app


def test_external_postgres_points_the_database_entry_at_the_managed_server(kubectl: str) -> None:
    """With a managed PostgreSQL the Sidecars name its ServiceEntry instead of the in-cluster
    Service (REGISTRY_ONLY would leave the services without a route to their database)."""
    resources = build(kubectl, K8S / "tests" / "external-postgres")
    entry = named(resources, "ServiceEntry", "external-postgres")["spec"]
    (database,) = entry["hosts"]
    assert entry["location"] == "MESH_EXTERNAL"
    assert [p["number"] for p in entry["ports"]] == [5432]
    config = next(
        c
        for c in of_kind(resources, "ConfigMap")
        if c["metadata"]["name"].startswith("zoptal-databases")
    )
    assert all(f"@{database}:5432/" in url for url in config["data"].values())
    graph = callees()
    for app, found in sidecar_hosts(resources).items():
        expected = {f"./{fqdn(c)}" for c in graph.get(app, set()) if c != "postgres"}
        if "postgres" in graph.get(app, set()):
            expected.add(f"./{database}")
        if app == WORKER:
            expected.add(f"./{relay_of(resources)}")
        assert found == expected | {"istio-system/*"}, app


def tcp_route(virtual_service: Resource, gateway: str, port: int) -> dict[str, Any] | None:
    """The TCP route Envoy picks for a connection on `port` seen by `gateway` (`mesh` for a
    sidecar): the first whose match fits."""
    for route in virtual_service["spec"].get("tcp", []):
        for match in route.get("match", [{}]):
            if (
                gateway in match.get("gateways", virtual_service["spec"]["gateways"])
                and match.get("port", port) == port
            ):
                return route
    return None


def routes_for(resources: list[Resource], host: str, gateway: str) -> list[Resource]:
    return [
        vs
        for vs in of_kind(resources, "VirtualService")
        if host in vs["spec"]["hosts"] and gateway in vs["spec"].get("gateways", ["mesh"])
    ]


@pytest.mark.parametrize(
    ("scenario", "relay"), [("k8s", DEFAULT_RELAY), ("smtp-relay", SCENARIO_RELAY)]
)
def test_smtp_goes_mesh_then_egress_gateway_then_the_relay(
    kubectl: str, scenario: str, relay: str
) -> None:
    """From the worker's sidecar, port 587 goes to the egress gateway over Istio mTLS with the
    relay as SNI; the gateway takes exactly that SNI over ISTIO_MUTUAL on 443 and forwards to
    the relay, an external ServiceEntry, on 587. The relay's name is the ConfigMap's, in every
    resource (the scenario changes it once)."""
    directory = K8S if scenario == "k8s" else K8S / "tests" / scenario
    resources = build(kubectl, directory)
    assert relay_of(resources) == relay
    entry = named(resources, "ServiceEntry", "smtp-relay")["spec"]
    assert entry["location"] == "MESH_EXTERNAL"
    assert entry["resolution"] == "DNS"
    assert entry["ports"] == [{"number": SMTP_PORT, "name": "tcp-smtp", "protocol": "TCP"}]
    assert "addresses" not in entry, "matched by port: the worker dials the relay's own address"

    # leg 1: the worker's sidecar
    (mesh_vs,) = routes_for(resources, relay, "mesh")
    first = tcp_route(mesh_vs, "mesh", SMTP_PORT)
    assert first is not None
    (to_gateway,) = first["route"]
    assert to_gateway["destination"]["host"] == EGRESS_GATEWAY
    gateway_port = to_gateway["destination"]["port"]["number"]
    rule = next(
        r for r in of_kind(resources, "DestinationRule") if r["spec"]["host"] == EGRESS_GATEWAY
    )
    subset = next(
        s for s in rule["spec"]["subsets"] if s["name"] == to_gateway["destination"]["subset"]
    )
    (port_policy,) = subset["trafficPolicy"]["portLevelSettings"]
    assert port_policy["port"] == {"number": gateway_port}
    assert port_policy["tls"] == {"mode": "ISTIO_MUTUAL", "sni": relay}

    # leg 2: the egress gateway
    (gateway,) = [
        g
        for g in of_kind(resources, "Gateway")
        if g["spec"]["selector"] == {"istio": "egressgateway"}
    ]
    (server,) = gateway["spec"]["servers"]
    assert server["port"]["number"] == gateway_port
    assert server["hosts"] == [relay]
    assert server["tls"] == {"mode": "ISTIO_MUTUAL"}
    name = gateway["metadata"]["name"]
    (gateway_vs,) = routes_for(resources, relay, name)
    assert gateway_vs is mesh_vs
    second = tcp_route(gateway_vs, name, gateway_port)
    assert second is not None
    assert second is not first
    assert [d["destination"] for d in second["route"]] == [
        {"host": relay, "port": {"number": SMTP_PORT}}
    ]
    # the worker is pointed at the relay where the scenario says so
    if scenario == "smtp-relay":
        config = next(
            c
            for c in of_kind(resources, "ConfigMap")
            if c["metadata"]["name"].startswith("notification-config")
        )["data"]
        assert (config["SMTP_HOST"], config["SMTP_PORT"]) == (relay, str(SMTP_PORT))
        assert config["SMTP_STARTTLS"] == "true"


def test_only_the_worker_may_use_the_relay_route(full_install: list[Resource]) -> None:
    """On the egress gateway (istio-system, shared by the mesh), a DENY for every identity but
    the worker's on the relay's SNI: the others' egress stays as it was."""
    policies = [
        p
        for p in of_kind(full_install, "AuthorizationPolicy")
        if p["metadata"]["namespace"] == "istio-system"
    ]
    assert [p["metadata"]["name"] for p in policies] == ["zoptal-smtp-relay"]
    spec = policies[0]["spec"]
    assert spec["selector"] == {"matchLabels": {"istio": "egressgateway"}}
    assert spec["action"] == "DENY"
    (rule,) = spec["rules"]
    assert rule["from"] == [{"source": {"notPrincipals": [WORKER_PRINCIPAL]}}]
    assert rule["when"] == [{"key": "connection.sni", "values": [relay_of(full_install)]}]
    assert "to" not in rule, "any gateway port: the SNI is what names the route"


@pytest.mark.parametrize(
    "directory",
    [K8S, *sorted(p.parent for p in K8S.glob("tests/*/kustomization.yaml"))],
    ids=lambda d: str(d.relative_to(K8S)) or "k8s",
)
def test_no_build_moves_the_gateway_policy_out_of_istio_system(
    kubectl: str, directory: Path
) -> None:
    """A `namespace:` in a kustomization including the component would move it into zoptal,
    where it would select nothing."""
    resources = build(kubectl, directory)
    moved = [
        p["metadata"]
        for p in of_kind(resources, "AuthorizationPolicy")
        if "istio" in p["spec"].get("selector", {}).get("matchLabels", {})
    ]
    assert all(m["namespace"] == "istio-system" for m in moved), moved


def test_the_sidecar_schema_is_closed(full_install: list[Resource]) -> None:
    """Istio's Sidecar selects by `labels`; the policies' `matchLabels` there would be pruned
    by the API server and the Sidecar would apply to the whole namespace."""
    sidecar = json.loads(json.dumps(named(full_install, "Sidecar", WORKER)))
    schema = ISTIO_SCHEMAS[("networking.istio.io/v1", "Sidecar")]
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(sidecar))
    sidecar["spec"]["workloadSelector"] = {"matchLabels": {"app": WORKER}}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(sidecar))


def test_every_service_has_a_sidecar_and_the_graph_names_only_services(
    full_install: list[Resource],
) -> None:
    """The call graph's callees are Services of the install (so `./<fqdn>` names a real host)."""
    services = {s["metadata"]["name"] for s in of_kind(full_install, "Service")}
    assert {c for targets in callees().values() for c in targets} <= services
    assert set(SERVICES) <= set(sidecar_hosts(full_install))
