"""Strict JSON schemas for the Istio resources k8s/ uses, written from Istio's API reference.

Istio's CRDs publish their schema without ``additionalProperties: false``, so an unknown field
(the seed's ``circuitBreaker``, a typo like ``consecutive5xxError``) would pass them and be
silently pruned by the API server. These schemas close every object: each field is one that
Istio's v1 API defines (names, types, enums and oneOf groups as in the reference); fields this
project does not use yet are listed where cheap, and anything else is rejected. Add a field here
when a manifest starts using it, after checking it in Istio's reference.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
STRINGS: Schema = {"type": "array", "items": STRING}
BOOL: Schema = {"type": "boolean"}
INT32: Schema = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
# protobuf Duration in its JSON form: "10s", "1.5s", "300ms".
DURATION: Schema = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$"}
PERCENT: Schema = {"type": "number", "minimum": 0, "maximum": 100}
LABELS: Schema = {"type": "object", "additionalProperties": STRING}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A closed object: only the listed properties are allowed."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def one_of_keys(*keys: str) -> Schema:
    """At most one of ``keys`` is set (Istio's protobuf ``oneof``)."""
    return {"not": {"anyOf": [{"required": [a, b]} for a in keys for b in keys if a < b]}}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def with_rules(schema: Schema, *rules: Schema) -> Schema:
    return {**schema, "allOf": list(rules)}


WORKLOAD_SELECTOR = obj({"matchLabels": LABELS})
POLICY_TARGET_REF = obj(
    {"group": STRING, "kind": STRING, "name": STRING, "namespace": STRING}, ("kind", "name")
)
STRING_MATCH = with_rules(
    obj({"exact": STRING, "prefix": STRING, "regex": STRING}),
    one_of_keys("exact", "prefix", "regex"),
)

# --- networking.istio.io/v1 DestinationRule ---------------------------------------------------
CONNECTION_POOL = obj(
    {
        "tcp": obj(
            {
                "maxConnections": INT32,
                "connectTimeout": DURATION,
                "tcpKeepalive": obj({"probes": INT32, "time": DURATION, "interval": DURATION}),
                "maxConnectionDuration": DURATION,
                "idleTimeout": DURATION,
            }
        ),
        "http": obj(
            {
                "http1MaxPendingRequests": INT32,
                "http2MaxRequests": INT32,
                "maxRequestsPerConnection": INT32,
                "maxRetries": INT32,
                "idleTimeout": DURATION,
                "h2UpgradePolicy": enum("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"),
                "useClientProtocol": BOOL,
                "maxConcurrentStreams": INT32,
                "http2KeepAlive": obj({"interval": DURATION, "timeout": DURATION}),
            }
        ),
    }
)
OUTLIER_DETECTION = obj(
    {
        "splitExternalLocalOriginErrors": BOOL,
        "consecutiveLocalOriginFailures": INT32,
        "consecutiveGatewayErrors": INT32,
        "consecutive5xxErrors": INT32,
        "interval": DURATION,
        "baseEjectionTime": DURATION,
        "maxEjectionPercent": {"type": "integer", "minimum": 0, "maximum": 100},
        "minHealthPercent": {"type": "integer", "minimum": 0, "maximum": 100},
    }
)
LOAD_BALANCER = obj(
    {
        "simple": enum(
            "UNSPECIFIED", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN"
        ),
        "warmupDurationSecs": DURATION,
    }
)
CLIENT_TLS = obj(
    {
        "mode": enum("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"),
        "credentialName": STRING,
        "sni": STRING,
        "subjectAltNames": STRINGS,
        "insecureSkipVerify": BOOL,
    }
)
PORT_SELECTOR = obj({"number": PORT})
TRAFFIC_POLICY_FIELDS: dict[str, Schema] = {
    "loadBalancer": LOAD_BALANCER,
    "connectionPool": CONNECTION_POOL,
    "outlierDetection": OUTLIER_DETECTION,
    "tls": CLIENT_TLS,
}
TRAFFIC_POLICY = obj(
    {
        **TRAFFIC_POLICY_FIELDS,
        "portLevelSettings": array(obj({"port": PORT_SELECTOR, **TRAFFIC_POLICY_FIELDS})),
    }
)
DESTINATION_RULE_SPEC = obj(
    {
        "host": STRING,
        "trafficPolicy": TRAFFIC_POLICY,
        "subsets": array(
            obj({"name": STRING, "labels": LABELS, "trafficPolicy": TRAFFIC_POLICY}, ("name",))
        ),
        "exportTo": STRINGS,
        "workloadSelector": WORKLOAD_SELECTOR,
    },
    ("host",),
)

# Port protocols as Istio names them (Gateway servers, ServiceEntry and Sidecar ports).
PROTOCOL = enum("HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS")

# --- networking.istio.io/v1 VirtualService -----------------------------------------------------
DESTINATION = obj({"host": STRING, "subset": STRING, "port": PORT_SELECTOR}, ("host",))
HEADER_OPERATIONS = obj({"set": LABELS, "add": LABELS, "remove": STRINGS})
HEADERS = obj({"request": HEADER_OPERATIONS, "response": HEADER_OPERATIONS})
PERCENTAGE = obj({"value": PERCENT})
HTTP_MATCH = obj(
    {
        "name": STRING,
        "uri": STRING_MATCH,
        "scheme": STRING_MATCH,
        "method": STRING_MATCH,
        "authority": STRING_MATCH,
        "headers": {"type": "object", "additionalProperties": STRING_MATCH},
        "port": PORT,
        "sourceLabels": LABELS,
        "gateways": STRINGS,
        "queryParams": {"type": "object", "additionalProperties": STRING_MATCH},
        "ignoreUriCase": BOOL,
        "withoutHeaders": {"type": "object", "additionalProperties": STRING_MATCH},
        "sourceNamespace": STRING,
        "statPrefix": STRING,
    }
)
RETRIES = obj(
    {
        "attempts": INT32,
        "perTryTimeout": DURATION,
        "retryOn": {"type": "string", "pattern": r"^[a-z0-9\-]+(,[a-z0-9\-]+)*$"},
        "retryRemoteLocalities": BOOL,
        "retryIgnorePreviousHosts": BOOL,
        "backoff": DURATION,
    }
)
FAULT = obj(
    {
        "delay": with_rules(
            obj({"fixedDelay": DURATION, "exponentialDelay": DURATION, "percentage": PERCENTAGE}),
            one_of_keys("fixedDelay", "exponentialDelay"),
        ),
        "abort": with_rules(
            obj(
                {
                    "httpStatus": {"type": "integer", "minimum": 200, "maximum": 599},
                    # A gRPC status name in capitals ("UNAVAILABLE"), as Istio documents it.
                    "grpcStatus": enum(
                        "CANCELLED",
                        "UNKNOWN",
                        "INVALID_ARGUMENT",
                        "DEADLINE_EXCEEDED",
                        "NOT_FOUND",
                        "ALREADY_EXISTS",
                        "PERMISSION_DENIED",
                        "RESOURCE_EXHAUSTED",
                        "FAILED_PRECONDITION",
                        "ABORTED",
                        "OUT_OF_RANGE",
                        "UNIMPLEMENTED",
                        "INTERNAL",
                        "UNAVAILABLE",
                        "DATA_LOSS",
                        "UNAUTHENTICATED",
                    ),
                    "http2Error": STRING,
                    "percentage": PERCENTAGE,
                }
            ),
            one_of_keys("httpStatus", "grpcStatus", "http2Error"),
        ),
    }
)
HTTP_ROUTE = obj(
    {
        "name": STRING,
        "match": array(HTTP_MATCH),
        "route": array(
            obj(
                {
                    "destination": DESTINATION,
                    "weight": {"type": "integer", "minimum": 0},
                    "headers": HEADERS,
                },
                ("destination",),
            )
        ),
        "rewrite": obj({"uri": STRING, "authority": STRING}),
        "timeout": DURATION,
        "retries": RETRIES,
        "fault": FAULT,
        "mirror": DESTINATION,
        "mirrorPercentage": PERCENTAGE,
        "headers": HEADERS,
    }
)
ROUTE_DESTINATION = obj(
    {"destination": DESTINATION, "weight": {"type": "integer", "minimum": 0}}, ("destination",)
)
L4_MATCH = obj(
    {
        "destinationSubnets": STRINGS,
        "port": PORT,
        "sourceLabels": LABELS,
        "gateways": STRINGS,
        "sourceNamespace": STRING,
    }
)
TCP_ROUTE = obj({"match": array(L4_MATCH), "route": array(ROUTE_DESTINATION)})
VIRTUAL_SERVICE_SPEC = obj(
    {
        "hosts": STRINGS,
        "gateways": STRINGS,
        "http": array(HTTP_ROUTE),
        "tcp": array(TCP_ROUTE),
        "exportTo": STRINGS,
    }
)

# --- networking.istio.io/v1 ServiceEntry -------------------------------------------------------
SERVICE_PORT = obj(
    {"number": PORT, "protocol": PROTOCOL, "name": STRING, "targetPort": PORT}, ("number", "name")
)
SERVICE_ENTRY_SPEC = obj(
    {
        "hosts": STRINGS,
        "addresses": STRINGS,
        "ports": array(SERVICE_PORT),
        "location": enum("MESH_EXTERNAL", "MESH_INTERNAL"),
        "resolution": enum("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"),
        "endpoints": array(
            obj(
                {
                    "address": STRING,
                    "ports": {"type": "object", "additionalProperties": PORT},
                    "labels": LABELS,
                    "network": STRING,
                    "locality": STRING,
                    "weight": INT32,
                    "serviceAccount": STRING,
                }
            )
        ),
        "workloadSelector": obj({"labels": LABELS}),
        "exportTo": STRINGS,
        "subjectAltNames": STRINGS,
    },
    ("hosts",),
)

# --- networking.istio.io/v1 Sidecar ------------------------------------------------------------
SIDECAR_PORT = obj({"number": PORT, "protocol": PROTOCOL, "name": STRING, "targetPort": PORT})
CAPTURE_MODE = enum("DEFAULT", "IPTABLES", "NONE")
SIDECAR_SPEC = obj(
    {
        # The Sidecar's selector is `labels`, not the policies' `matchLabels`.
        "workloadSelector": obj({"labels": LABELS}),
        "ingress": array(
            obj(
                {
                    "port": SIDECAR_PORT,
                    "bind": STRING,
                    "captureMode": CAPTURE_MODE,
                    "defaultEndpoint": STRING,
                    "connectionPool": CONNECTION_POOL,
                },
                ("port",),
            )
        ),
        "egress": array(
            obj(
                {
                    "port": SIDECAR_PORT,
                    "bind": STRING,
                    "captureMode": CAPTURE_MODE,
                    "hosts": {**STRINGS, "minItems": 1},
                },
                ("hosts",),
            )
        ),
        "outboundTrafficPolicy": obj(
            {"mode": enum("REGISTRY_ONLY", "ALLOW_ANY"), "egressProxy": DESTINATION}
        ),
        "inboundConnectionPool": CONNECTION_POOL,
    }
)

# --- networking.istio.io/v1 Gateway ------------------------------------------------------------
GATEWAY_SPEC = obj(
    {
        "selector": LABELS,
        "servers": array(
            obj(
                {
                    "port": obj(
                        {
                            "number": PORT,
                            "protocol": PROTOCOL,
                            "name": STRING,
                            "targetPort": PORT,
                        },
                        ("number", "protocol", "name"),
                    ),
                    "bind": STRING,
                    "hosts": STRINGS,
                    "tls": obj(
                        {
                            "httpsRedirect": BOOL,
                            "mode": enum(
                                "PASSTHROUGH",
                                "SIMPLE",
                                "MUTUAL",
                                "AUTO_PASSTHROUGH",
                                "ISTIO_MUTUAL",
                                "OPTIONAL_MUTUAL",
                            ),
                            "credentialName": STRING,
                            "minProtocolVersion": enum(
                                "TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"
                            ),
                        }
                    ),
                    "name": STRING,
                },
                ("port", "hosts"),
            )
        ),
    },
    ("servers",),
)

# --- security.istio.io/v1 ------------------------------------------------------------------------
MTLS_MODE = enum("UNSET", "DISABLE", "PERMISSIVE", "STRICT")
PEER_AUTHENTICATION_SPEC = obj(
    {
        "selector": WORKLOAD_SELECTOR,
        "mtls": obj({"mode": MTLS_MODE}),
        "portLevelMtls": {
            "type": "object",
            "propertyNames": {"pattern": r"^[0-9]{1,5}$"},
            "additionalProperties": obj({"mode": MTLS_MODE}),
        },
    }
)
SOURCE = obj(
    {
        name: STRINGS
        for name in (
            "principals",
            "notPrincipals",
            "requestPrincipals",
            "notRequestPrincipals",
            "namespaces",
            "notNamespaces",
            "serviceAccounts",
            "notServiceAccounts",
            "ipBlocks",
            "notIpBlocks",
            "remoteIpBlocks",
            "notRemoteIpBlocks",
        )
    }
)
OPERATION = obj(
    {
        "hosts": STRINGS,
        "notHosts": STRINGS,
        # Ports are strings in AuthorizationPolicy.
        "ports": {"type": "array", "items": {"type": "string", "pattern": r"^[0-9]{1,5}$"}},
        "notPorts": {"type": "array", "items": {"type": "string", "pattern": r"^[0-9]{1,5}$"}},
        "methods": STRINGS,
        "notMethods": STRINGS,
        "paths": STRINGS,
        "notPaths": STRINGS,
    }
)
AUTHORIZATION_POLICY_SPEC = with_rules(
    obj(
        {
            "selector": WORKLOAD_SELECTOR,
            "targetRef": POLICY_TARGET_REF,
            "targetRefs": array(POLICY_TARGET_REF),
            "rules": array(
                obj(
                    {
                        "from": array(obj({"source": SOURCE})),
                        "to": array(obj({"operation": OPERATION})),
                        "when": array(
                            obj({"key": STRING, "values": STRINGS, "notValues": STRINGS}, ("key",))
                        ),
                    }
                )
            ),
            "action": enum("ALLOW", "DENY", "AUDIT", "CUSTOM"),
            "provider": obj({"name": STRING}),
        }
    ),
    one_of_keys("selector", "targetRef", "targetRefs"),
)
REQUEST_AUTHENTICATION_SPEC = obj(
    {
        "selector": WORKLOAD_SELECTOR,
        "targetRef": POLICY_TARGET_REF,
        "targetRefs": array(POLICY_TARGET_REF),
        "jwtRules": array(
            with_rules(
                obj(
                    {
                        "issuer": STRING,
                        "audiences": STRINGS,
                        "jwksUri": {"type": "string", "pattern": r"^https?://"},
                        "jwks": STRING,
                        "fromHeaders": array(obj({"name": STRING, "prefix": STRING}, ("name",))),
                        "fromParams": STRINGS,
                        "fromCookies": STRINGS,
                        "outputPayloadToHeader": STRING,
                        "forwardOriginalToken": BOOL,
                        "outputClaimToHeaders": array(
                            obj({"header": STRING, "claim": STRING}, ("header", "claim"))
                        ),
                        "timeout": DURATION,
                    },
                    ("issuer",),
                ),
                one_of_keys("jwksUri", "jwks"),
            )
        ),
    }
)

# --- telemetry.istio.io/v1 Telemetry -----------------------------------------------------------
CUSTOM_TAG = with_rules(
    obj(
        {
            "literal": obj({"value": STRING}, ("value",)),
            "environment": obj({"name": STRING, "defaultValue": STRING}, ("name",)),
            "header": obj({"name": STRING, "defaultValue": STRING}, ("name",)),
        }
    ),
    one_of_keys("literal", "environment", "header"),
)
TELEMETRY_SPEC = obj(
    {
        "selector": WORKLOAD_SELECTOR,
        "targetRef": POLICY_TARGET_REF,
        "targetRefs": array(POLICY_TARGET_REF),
        "tracing": array(
            obj(
                {
                    "match": obj({"mode": enum("CLIENT_AND_SERVER", "CLIENT", "SERVER")}),
                    "providers": array(obj({"name": STRING}, ("name",))),
                    "randomSamplingPercentage": PERCENT,
                    "disableSpanReporting": BOOL,
                    "customTags": {"type": "object", "additionalProperties": CUSTOM_TAG},
                    "useRequestIdForTraceSampling": BOOL,
                }
            )
        ),
    }
)

OBJECT_META = obj(
    {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "namespace": STRING,
        "labels": LABELS,
        "annotations": LABELS,
    },
    ("name",),
)


def _resource(api_version: str, kind: str, spec: Schema) -> Schema:
    return obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": OBJECT_META,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


ISTIO_SCHEMAS: dict[tuple[str, str], Schema] = {
    (api, kind): _resource(api, kind, spec)
    for api, kind, spec in (
        ("networking.istio.io/v1", "DestinationRule", DESTINATION_RULE_SPEC),
        ("networking.istio.io/v1", "VirtualService", VIRTUAL_SERVICE_SPEC),
        ("networking.istio.io/v1", "Gateway", GATEWAY_SPEC),
        ("networking.istio.io/v1", "ServiceEntry", SERVICE_ENTRY_SPEC),
        ("networking.istio.io/v1", "Sidecar", SIDECAR_SPEC),
        ("security.istio.io/v1", "PeerAuthentication", PEER_AUTHENTICATION_SPEC),
        ("security.istio.io/v1", "AuthorizationPolicy", AUTHORIZATION_POLICY_SPEC),
        ("security.istio.io/v1", "RequestAuthentication", REQUEST_AUTHENTICATION_SPEC),
        ("telemetry.istio.io/v1", "Telemetry", TELEMETRY_SPEC),
    )
}
