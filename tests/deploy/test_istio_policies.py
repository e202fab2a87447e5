"""The Istio component against the platform's real call graph and the protos' idempotency levels.

Routing is checked the way Envoy reads a VirtualService: the first route whose match fits a gRPC
path wins. The AuthorizationPolicies must allow exactly CALL_GRAPH plus the public surface: no
call path missing, none extra.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    K8S,
    NAMESPACE,
    REPO,
    SERVICES,
    Resource,
    build,
    calls_in_code,
    grpc_path,
    kustomizations,
    named,
    of_kind,
    proto_rpcs,
)

INGRESS = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
PROMETHEUS = "cluster.local/ns/istio-system/sa/prometheus"
EXTERNAL_PRINCIPALS = {INGRESS, PROMETHEUS}

# Who calls whom inside the mesh (DESIGN.md §3, docs/architecture.md): every call the services'
# code makes (test_call_graph_covers_the_calls_in_the_code), plus what every service does with
# Auth: get its own service token (IssueServiceToken), verify keys, poll revocations
# (zoptal.clients.service_identity.PeerAccess).
TOKEN_CHECKS = {"IssueServiceToken", "ValidateToken", "GetJwks", "ListRevocations"}
CALL_GRAPH: dict[tuple[str, str], set[str]] = {
    ("project", "billing"): {"CheckSubscriptionLimits", "RecordUsage"},
    ("project", "analytics"): {"TrackEvent"},
    ("billing", "notification"): {"SendEmail"},
    ("project", "auth"): TOKEN_CHECKS | {"GetUser"},
    ("billing", "auth"): TOKEN_CHECKS | {"GetUser"},
    ("notification", "auth"): TOKEN_CHECKS,
    ("analytics", "auth"): TOKEN_CHECKS,
}

# Internal-only RPCs: the ingress gateway may call every other RPC of the protos.
INTERNAL_ONLY = {("billing", "RecordUsage"), ("auth", "ListRevocations")} | {
    ("notification", rpc) for rpc in ("SendEmail", "SendSMS", "SendPushNotification")
}
# TCP dependencies: (caller ServiceAccount, callee app, port).
DATA_CLIENTS = [*SERVICES, "notification-worker"]
TCP_GRAPH = (
    {(c, "postgres", "5432") for c in DATA_CLIENTS}
    | {(c, "redis", "6379") for c in DATA_CLIENTS}
    | {("notification-worker", "mailpit", "1025")}
)
NEVER_RETRIED = {("billing", "RecordUsage")} | {
    ("notification", rpc) for rpc in ("SendEmail", "SendSMS", "SendPushNotification")
}


def fqdn(svc: str) -> str:
    return f"{svc}.{NAMESPACE}.svc.cluster.local"


def first_route(virtual_service: Resource, path: str) -> dict[str, Any] | None:
    """The HTTP route Envoy picks for a gRPC call to `path` (on the gRPC port)."""
    for route in virtual_service["spec"]["http"]:
        matches = route.get("match")
        if not matches:
            return route
        for match in matches:
            if "port" in match and match["port"] not in {p for p, _, _ in SERVICES.values()}:
                continue
            uri = match.get("uri", {})
            if (
                uri.get("exact") == path
                or ("prefix" in uri and path.startswith(uri["prefix"]))
                or not uri
            ):
                return route
    return None


def routed_services(virtual_service: Resource) -> set[str]:
    return {
        d["destination"]["host"].split(".")[0]
        for route in virtual_service["spec"].get("http", [])
        for d in route["route"]
    }


@pytest.fixture(scope="module")
def mesh_routes(full_install: list[Resource]) -> dict[str, Resource]:
    return {svc: named(full_install, "VirtualService", svc) for svc in SERVICES}


@pytest.fixture(scope="module")
def ingress_routes(full_install: list[Resource]) -> Resource:
    return named(full_install, "VirtualService", "zoptal-ingress")


def test_mtls_is_strict_for_the_namespace(full_install: list[Resource]) -> None:
    """Namespace-wide PeerAuthentication STRICT; the one exception is Auth's JWKS port."""
    default = named(full_install, "PeerAuthentication", "default")
    assert "selector" not in default["spec"]
    assert default["spec"]["mtls"]["mode"] == "STRICT"
    exceptions = [p for p in of_kind(full_install, "PeerAuthentication") if p is not default]
    assert [e["spec"].get("portLevelMtls") for e in exceptions] == [
        {"8080": {"mode": "PERMISSIVE"}}
    ]


@pytest.mark.parametrize("svc", SERVICES)
def test_destination_rule_is_a_real_circuit_breaker(full_install: list[Resource], svc: str) -> None:
    """ISTIO_MUTUAL, LEAST_REQUEST, connectionPool, outlierDetection on 5xx and gateway errors."""
    rule = named(full_install, "DestinationRule", svc)
    assert rule["spec"]["host"] == fqdn(svc)
    policy = rule["spec"]["trafficPolicy"]
    assert policy["tls"]["mode"] == "ISTIO_MUTUAL"
    assert policy["loadBalancer"]["simple"] == "LEAST_REQUEST"
    assert {"tcp", "http"} <= set(policy["connectionPool"])
    assert policy["outlierDetection"]["consecutive5xxErrors"] > 0
    assert policy["outlierDetection"]["consecutiveGatewayErrors"] > 0


@pytest.mark.parametrize("svc", SERVICES)
def test_mesh_routes_retry_only_read_only_rpcs(mesh_routes: dict[str, Resource], svc: str) -> None:
    """Each RPC is routed with a timeout; retried only when the proto says NO_SIDE_EFFECTS."""
    for rpc, level in proto_rpcs(svc).items():
        route = first_route(mesh_routes[svc], grpc_path(svc, rpc))
        assert route is not None, f"{rpc} is not routed"
        assert "timeout" in route, f"{rpc}: no timeout"
        assert "retries" in route, f"{rpc}: Istio's default retries would apply"
        retried = route["retries"]["attempts"] > 0
        assert retried == (level == "NO_SIDE_EFFECTS"), f"{rpc} ({level}) retried={retried}"


@pytest.mark.parametrize(("svc", "rpc"), sorted(NEVER_RETRIED))
def test_usage_and_sends_are_never_retried_by_a_sidecar(
    full_install: list[Resource], svc: str, rpc: str
) -> None:
    """RecordUsage and Send* hit an exact-path route with attempts 0 in every VirtualService."""
    for virtual_service in of_kind(full_install, "VirtualService"):
        if svc not in routed_services(virtual_service):
            continue
        route = first_route(virtual_service, grpc_path(svc, rpc))
        assert route is not None
        exact = [m["uri"].get("exact") for m in route.get("match", []) if "uri" in m]
        assert exact == [grpc_path(svc, rpc)], virtual_service["metadata"]["name"]
        assert route["retries"]["attempts"] == 0


@pytest.mark.parametrize("scenario", ["canary", "fault-injection"])
def test_scenarios_keep_the_retry_rules(kubectl: str, scenario: str) -> None:
    """Test scenarios change weights and faults, never the no-retry rules."""
    resources = build(kubectl, K8S / "tests" / scenario)
    for virtual_service in of_kind(resources, "VirtualService"):
        for svc in routed_services(virtual_service) & set(SERVICES):
            for rpc, level in proto_rpcs(svc).items():
                route = first_route(virtual_service, grpc_path(svc, rpc))
                if route is not None and route["retries"]["attempts"] > 0:
                    assert level == "NO_SIDE_EFFECTS", f"{scenario}: {svc}.{rpc}"


def test_canary_splits_billing_90_10_by_version(kubectl: str) -> None:
    """Every route to billing, in the mesh and at the ingress gateway, sends 90 % to subset v1
    and 10 % to v2, and both subsets exist."""
    resources = build(kubectl, K8S / "tests" / "canary")
    rule = named(resources, "DestinationRule", "billing")
    assert {s["name"]: s["labels"]["version"] for s in rule["spec"]["subsets"]} == {
        "v1": "v1",
        "v2": "v2",
    }
    assert (
        named(resources, "Deployment", "billing-v2")["spec"]["template"]["metadata"]["labels"][
            "version"
        ]
        == "v2"
    )
    # Every route to billing, the mesh's (from Project) and the ingress gateway's (from outside):
    # a gateway-bound VirtualService and a mesh one never apply to each other's traffic.
    billing_routes = [
        (virtual_service["metadata"]["name"], route)
        for virtual_service in of_kind(resources, "VirtualService")
        for route in virtual_service["spec"].get("http", [])
        if any(d["destination"]["host"] == fqdn("billing") for d in route["route"])
    ]
    assert {name for name, _ in billing_routes} == {"billing", "zoptal-ingress"}
    for name, route in billing_routes:
        assert {d["destination"]["subset"]: d["weight"] for d in route["route"]} == {
            "v1": 90,
            "v2": 10,
        }, f"{name}/{route['name']}"
    ingress = named(resources, "VirtualService", "zoptal-ingress")
    for rpc in proto_rpcs("billing"):
        route = first_route(ingress, grpc_path("billing", rpc))
        assert route is not None
        assert {d["destination"].get("subset") for d in route["route"]} == {"v1", "v2"}, rpc
        assert {d["destination"]["port"]["number"] for d in route["route"]} == {4003}


def test_canary_deployment_differs_from_billing_only_by_version(kubectl: str) -> None:
    """billing-v2 is the base Deployment with a new name, version label, image tag and 1 replica."""
    resources = build(kubectl, K8S / "tests" / "canary")
    stable = named(resources, "Deployment", "billing")
    canary = named(resources, "Deployment", "billing-v2")

    def normalised(deployment: Resource) -> str:
        text = json.dumps({k: deployment[k] for k in ("metadata", "spec")}, sort_keys=True)
        for old, new in (("billing-v2", "billing"), ('"v2"', '"v1"'), (":0.2.0", ":0.1.0")):
            text = text.replace(old, new)
        return text.replace('"replicas": 1, ', "")

    assert normalised(canary) == normalised(stable)


def test_fault_injection_targets_track_event_only(kubectl: str) -> None:
    """The chaos scenario delays and aborts Analytics.TrackEvent, the off-critical-path call."""
    resources = build(kubectl, K8S / "tests" / "fault-injection")
    routes = named(resources, "VirtualService", "analytics")["spec"]["http"]
    faulty = [r for r in routes if "fault" in r]
    assert len(faulty) == 1
    assert faulty[0]["match"] == [{"uri": {"exact": grpc_path("analytics", "TrackEvent")}}]
    assert faulty[0]["fault"]["abort"]["grpcStatus"] == "UNAVAILABLE"


def test_ingress_routes_every_public_rpc(
    full_install: list[Resource], ingress_routes: Resource
) -> None:
    """The gateway routes each service prefix to its Service port; its retries follow the protos."""
    gateway = named(full_install, "Gateway", "zoptal-gateway")
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert ingress_routes["spec"]["gateways"] == ["zoptal-gateway"]
    for svc, (grpc_port, _, _) in SERVICES.items():
        for rpc, level in proto_rpcs(svc).items():
            route = first_route(ingress_routes, grpc_path(svc, rpc))
            assert route is not None, f"{svc}.{rpc}"
            assert route["route"][0]["destination"] == {
                "host": fqdn(svc),
                "port": {"number": grpc_port},
            }
            assert (route["retries"]["attempts"] > 0) == (level == "NO_SIDE_EFFECTS")


def allowed_calls(full_install: list[Resource]) -> set[tuple[str, str, str, str]]:
    """(caller principal, callee app, port, path or method) for every ALLOW rule with a `from`."""
    calls = set()
    for policy in of_kind(full_install, "AuthorizationPolicy"):
        spec = policy["spec"]
        if not spec or spec["action"] == "DENY":
            continue
        assert spec["action"] == "ALLOW"
        callee = spec["selector"]["matchLabels"]["app"]
        for rule in spec["rules"]:
            principals = [p for f in rule.get("from", []) for p in f["source"]["principals"]]
            for to in rule["to"]:
                operation = to["operation"]
                targets = operation.get("paths") or operation.get("methods") or ["*"]
                for principal in principals or ["<any>"]:
                    for port in operation["ports"]:
                        calls |= {(principal, callee, port, target) for target in targets}
    return calls


def expected_calls() -> set[tuple[str, str, str, str]]:
    calls = set()
    for (caller, callee), rpcs in CALL_GRAPH.items():
        port = str(SERVICES[callee][0])
        principal = f"cluster.local/ns/{NAMESPACE}/sa/{caller}"
        calls |= {(principal, callee, port, grpc_path(callee, rpc)) for rpc in rpcs}
    for svc, (grpc_port, metrics_port, _) in SERVICES.items():
        calls |= {
            (INGRESS, svc, str(grpc_port), grpc_path(svc, rpc))
            for rpc in proto_rpcs(svc)
            if (svc, rpc) not in INTERNAL_ONLY
        }
        calls.add((PROMETHEUS, svc, str(metrics_port), "GET"))
    calls |= {
        (f"cluster.local/ns/{NAMESPACE}/sa/{c}", app, port, "*") for c, app, port in TCP_GRAPH
    }
    calls.add(("<any>", "auth", "8080", "/.well-known/jwks.json"))
    return calls


def test_call_graph_covers_the_calls_in_the_code() -> None:
    """Every typed-client call in services/*/src is in CALL_GRAPH, so its policy allows it."""
    declared = {(c, s, rpc) for (c, s), rpcs in CALL_GRAPH.items() for rpc in rpcs}
    found = calls_in_code()
    assert not found - declared, f"calls the policies would deny: {sorted(found - declared)}"
    assert ("project", "billing", "RecordUsage") in found, "the scan found nothing: is it broken?"
    undeclared_extras = {call for call in declared - found if call[2] not in TOKEN_CHECKS}
    assert not undeclared_extras, f"allowed but never called: {sorted(undeclared_extras)}"


def test_authorization_policies_match_the_call_graph(full_install: list[Resource]) -> None:
    """Deny by default, then exactly the call graph: nothing missing, nothing extra."""
    assert named(full_install, "AuthorizationPolicy", "allow-nothing")["spec"] == {}
    allowed = allowed_calls(full_install)
    expected = expected_calls()
    assert not expected - allowed, f"missing: {sorted(expected - allowed)}"
    assert not allowed - expected, f"extra: {sorted(allowed - expected)}"


def test_policy_principals_are_service_accounts_that_exist(full_install: list[Resource]) -> None:
    """Each in-namespace principal is a ServiceAccount of the install that a workload runs as."""
    accounts = {a["metadata"]["name"] for a in of_kind(full_install, "ServiceAccount")}
    used = {
        w["spec"]["template"]["spec"].get("serviceAccountName")
        for kind in ("Deployment", "StatefulSet", "Job")
        for w in of_kind(full_install, kind)
    }
    for principal, *_ in allowed_calls(full_install):
        if principal in EXTERNAL_PRINCIPALS or principal == "<any>":
            continue
        trust_domain, _, namespace, _, account = principal.split("/")
        assert (trust_domain, namespace) == ("cluster.local", NAMESPACE), principal
        assert account in accounts, principal
        assert account in used, principal


def test_policy_selectors_select_workloads(full_install: list[Resource]) -> None:
    """A policy whose selector matches no pod would protect nothing."""
    apps = {
        w["spec"]["template"]["metadata"]["labels"]["app"]
        for kind in ("Deployment", "StatefulSet")
        for w in of_kind(full_install, kind)
    }
    for policy in of_kind(full_install, "AuthorizationPolicy"):
        if policy["metadata"]["namespace"] != NAMESPACE:
            continue  # the egress gateway's (test_only_the_worker_may_use_the_relay_route)
        if policy["spec"] and "selector" in policy["spec"]:
            assert policy["spec"]["selector"]["matchLabels"]["app"] in apps
        elif policy["spec"]:
            assert policy["spec"]["action"] == "DENY", "only a DENY may cover the whole namespace"


def test_request_authentication_uses_the_auth_jwks(full_install: list[Resource]) -> None:
    """jwksUri is Auth's HTTP port; issuer and audience are the ones every verifier demands."""
    (rule,) = named(full_install, "RequestAuthentication", "zoptal-jwt")["spec"]["jwtRules"]
    assert rule["jwksUri"] == f"http://{fqdn('auth')}:8080/.well-known/jwks.json"
    config = next(
        c
        for c in of_kind(full_install, "ConfigMap")
        if c["metadata"]["name"].startswith("zoptal-config")
    )
    assert rule["issuer"] == config["data"]["JWT_ISSUER"]
    assert rule["audiences"] == [config["data"]["JWT_AUDIENCE"]]
    assert rule["forwardOriginalToken"] is True
    auth_ports = {p["port"] for p in named(full_install, "Service", "auth")["spec"]["ports"]}
    assert 8080 in auth_ports


def test_tracing_samples_and_tags_like_the_seed(full_install: list[Resource]) -> None:
    """Telemetry sends Envoy spans to a provider with sampling and the seed's custom tags."""
    (tracing,) = named(full_install, "Telemetry", "zoptal-tracing")["spec"]["tracing"]
    assert tracing["providers"] == [{"name": "jaeger"}]
    assert 0 < tracing["randomSamplingPercentage"] <= 100
    assert {"user_id", "request_id"} <= set(tracing["customTags"])


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda d: str(d.relative_to(REPO)))
def test_the_traced_user_id_is_only_ever_the_verified_token_subject(
    kubectl: str, directory: Path
) -> None:
    """The tracing tag user_id reads a header only Envoy writes: the RequestAuthentication copies
    a verified token's `sub` into it, every route of the ingress gateway removes a client's own
    (a request without a token passes the RequestAuthentication with it), and no route sets it."""
    resources = build(kubectl, directory)
    if not of_kind(resources, "Telemetry"):
        assert not of_kind(resources, "VirtualService"), "Istio routes without the component"
        return
    (tracing,) = named(resources, "Telemetry", "zoptal-tracing")["spec"]["tracing"]
    header = tracing["customTags"]["user_id"]["header"]["name"]
    (rule,) = named(resources, "RequestAuthentication", "zoptal-jwt")["spec"]["jwtRules"]
    assert {"header": header, "claim": "sub"} in rule["outputClaimToHeaders"]
    ingress = [
        virtual_service
        for virtual_service in of_kind(resources, "VirtualService")
        if "zoptal-gateway" in virtual_service["spec"].get("gateways", [])
    ]
    assert [v["metadata"]["name"] for v in ingress] == ["zoptal-ingress"]
    assert set(ingress[0]["spec"]) == {"hosts", "gateways", "http"}, "only HTTP routes"
    for route in ingress[0]["spec"]["http"]:
        removed = route.get("headers", {}).get("request", {}).get("remove", [])
        assert header in removed, route["name"]
    for virtual_service in of_kind(resources, "VirtualService"):
        for route in virtual_service["spec"].get("http", []):
            for operations in (route, *route["route"]):
                request = operations.get("headers", {}).get("request", {})
                written = {*request.get("set", {}), *request.get("add", {})}
                assert header not in {name.lower() for name in written}, route["name"]


SERVICE_TOKEN_HEADER = "x-service-token"
HEADER_CONDITION = re.compile(r"request\.headers\[([^\]]+)\]")


def value_matches(pattern: str, value: str) -> bool:
    """Istio's string match: exact, prefix `abc*`, suffix `*abc`, presence `*` (non-empty)."""
    if pattern == "*":
        return value != ""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def rule_matches(rule: dict[str, Any], request: dict[str, Any]) -> bool:
    """One AuthorizationPolicy rule against a request (principal, app, port, path, headers):
    any `from` source, any `to` operation, and every `when` condition."""
    sources = [f["source"] for f in rule.get("from", [])]
    if sources and not any(
        any(value_matches(p, request["principal"]) for p in s.get("principals", ["*"]))
        for s in sources
    ):
        return False
    operations = [t["operation"] for t in rule.get("to", [])]
    if operations and not any(
        request["port"] in o.get("ports", [request["port"]])
        and any(value_matches(p, request["path"]) for p in o.get("paths", ["*"]))
        and "POST" in o.get("methods", ["POST"])
        for o in operations
    ):
        return False
    for condition in rule.get("when", []):
        header = HEADER_CONDITION.fullmatch(condition["key"])
        assert header, f"unexpected condition key {condition['key']}"
        value = request["headers"].get(header.group(1).lower())
        if "values" in condition and not (
            value is not None and any(value_matches(v, value) for v in condition["values"])
        ):
            return False
        if "notValues" in condition and (
            value is not None and any(value_matches(v, value) for v in condition["notValues"])
        ):
            return False
    return True


def denied(full_install: list[Resource], request: dict[str, Any]) -> bool:
    """Whether a DENY policy of the install refuses the request (DENY is checked before ALLOW)."""
    for policy in of_kind(full_install, "AuthorizationPolicy"):
        spec = policy["spec"]
        if spec.get("action") != "DENY":
            continue
        selector = spec.get("selector", {}).get("matchLabels", {})
        if selector and selector.get("app") != request["app"]:
            continue
        if any(rule_matches(rule, request) for rule in spec["rules"]):
            return True
    return False


def test_the_ingress_gateway_can_not_send_service_tokens(full_install: list[Resource]) -> None:
    """Every call the gateway may make is refused when it carries x-service-token, and allowed
    without it; every service-to-service call of CALL_GRAPH keeps its token."""
    calls = expected_calls()
    checked = 0
    for principal, app, port, path in sorted(calls):
        if app not in SERVICES or port != str(SERVICES[app][0]):
            continue
        request = {"principal": principal, "app": app, "port": port, "path": path}
        with_token = {**request, "headers": {SERVICE_TOKEN_HEADER: "eyJ.token.sig"}}
        without = {**request, "headers": {"authorization": "Bearer eyJ.token.sig"}}
        assert not denied(full_install, without), f"{principal} -> {app} {path}"
        assert denied(full_install, with_token) == (principal == INGRESS), (
            f"{principal} -> {app} {path} with {SERVICE_TOKEN_HEADER}"
        )
        checked += 1
    ingress_calls = {c for c in calls if c[0] == INGRESS}
    assert checked >= len(ingress_calls) + sum(len(r) for r in CALL_GRAPH.values())


def test_the_service_token_deny_covers_every_service(full_install: list[Resource]) -> None:
    """The DENY has no selector (the whole namespace) and tests the header Istio's way."""
    policy = named(full_install, "AuthorizationPolicy", "deny-service-token-from-ingress")
    spec = policy["spec"]
    assert spec["action"] == "DENY"
    assert "selector" not in spec
    (rule,) = spec["rules"]
    assert rule["from"] == [{"source": {"principals": [INGRESS]}}]
    assert rule["when"] == [{"key": f"request.headers[{SERVICE_TOKEN_HEADER}]", "values": ["*"]}]
