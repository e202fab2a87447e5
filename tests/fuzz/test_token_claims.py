"""Extreme values in every registered claim of user and service tokens, and in the JOSE header.

Each token is genuine but for one claim, and signed by Auth's real key, so only that claim can
explain a refusal: huge integers (10**400), JSON infinities and NaN (``1e999``, ``NaN``), 1e308,
times past year 9999 or before 1970, null, booleans, objects, arrays nested deeper than a JSON
parser recurses, and long arrays and texts that still fit a token. Every protected RPC answers
UNAUTHENTICATED (one per service is sent: the check is each service's interceptor chain, the same
for all its RPCs) and ValidateToken answers valid=false with a reason; nothing answers anything
else, and no reply names a Python exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2

from tests.fuzz.calls import Metadata, bearer, call, describe, leaks_internals, service_header
from tests.fuzz.catalogue import ALL_RPCS, PROTECTED_RPCS, Rpc
from tests.fuzz.conftest import Mesh
from tests.fuzz.tokens import (
    SERVICE_CLAIM_EDGES,
    USER_CLAIM_EDGES,
    Raw,
    service_claims,
    signed_raw,
    user_claims,
    with_raw_header,
)

# One protected RPC of each service, sent empty: a handler would answer INVALID_ARGUMENT, so
# UNAUTHENTICATED can only come from the token check in front of it.
PROBES: tuple[Rpc, ...] = tuple(
    next(rpc for rpc in PROTECTED_RPCS if rpc.service == service and not rpc.client_streaming)
    for service in ("auth", "project", "billing", "notification", "analytics")
)
VALIDATE = next(rpc for rpc in ALL_RPCS if str(rpc) == "auth.ValidateToken")
_DEEP = Raw("[" * 2_000 + "]" * 2_000)
HEADER_EDGES: dict[str, tuple[Any, ...]] = {
    "alg": (None, 1e308, Raw("1e999"), ["ES256"], {"ES256": True}, _DEEP, "ES256" * 1_000),
    "kid": (10**400, Raw("NaN"), ["kid"], {"$ne": ""}, _DEEP, "k" * 5_000),
    "crit": (["exp"], _DEEP),
    "x-deep": (_DEEP, Raw("[" * 200 + "{}" + "]" * 200)),
}


def _judge_probes(mesh: Mesh, metadata: Metadata, label: str) -> list[str]:
    wrong = []
    for rpc in PROBES:
        request = rpc.request_class()
        outcome = call(mesh.channel(rpc), rpc, request, metadata)
        leaked = leaks_internals(outcome)
        if outcome.code != grpc.StatusCode.UNAUTHENTICATED or leaked is not None:
            wrong.append(f"{label}: {describe(rpc, request, outcome)}")
    return wrong


def _judge_validation(mesh: Mesh, token: str, label: str) -> list[str]:
    """ValidateToken's verdict on ``token``, asked by a caller allowed to validate anyone's (the
    operator's service account holds ``user:validate``)."""
    request = auth_pb2.ValidateTokenRequest(token=token)
    outcome = call(mesh.channel(VALIDATE), VALIDATE, request, mesh.service_metadata)
    reply = outcome.response
    refused = (
        outcome.code == grpc.StatusCode.OK
        and not reply.valid
        and reply.reason != auth_pb2.INVALID_TOKEN_REASON_UNSPECIFIED
    )
    # A token too long for the request is refused as an argument; that is a verdict too.
    too_long = outcome.code == grpc.StatusCode.INVALID_ARGUMENT and "token" in outcome.details
    if not (refused or too_long) or leaks_internals(outcome) is not None:
        verdict = f"valid={reply.valid} reason={reply.reason}" if reply is not None else ""
        return [f"{label}: ValidateToken {verdict} {describe(VALIDATE, '<token>', outcome)}"]
    return []


def _cases(
    edges: dict[str, tuple[Any, ...]], claims: Callable[..., dict[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{name}={value!r:.40}", claims(**{name: value}))
        for name, values in edges.items()
        for value in values
    ]


KINDS: dict[str, tuple[dict[str, tuple[Any, ...]], Callable[[Mesh, str], Metadata]]] = {
    "user": (USER_CLAIM_EDGES, lambda mesh, token: bearer(token)),
    "service": (SERVICE_CLAIM_EDGES, lambda mesh, token: service_header(token)),
}


def _claims_for(mesh: Mesh, kind: str) -> Callable[..., dict[str, Any]]:
    if kind == "user":
        return lambda **overrides: user_claims(mesh.admin.user_id, **overrides)
    return lambda **overrides: service_claims("project", **overrides)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_extreme_claim_values_are_refused_by_every_service_and_by_validate_token(
    mesh: Mesh, kind: str
) -> None:
    """Each registered claim holding each extreme value: UNAUTHENTICATED everywhere."""
    edges, metadata_for = KINDS[kind]
    wrong: list[str] = []
    for label, claims in _cases(edges, _claims_for(mesh, kind)):
        token = signed_raw(mesh.signing_key, claims)
        wrong += _judge_probes(mesh, metadata_for(mesh, token), label)
        wrong += _judge_validation(mesh, token, label)
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_same_tokens_with_ordinary_claims_are_accepted(mesh: Mesh, kind: str) -> None:
    """Control: signed the same way with no claim changed, the token passes every probe."""
    _, metadata_for = KINDS[kind]
    token = signed_raw(mesh.signing_key, _claims_for(mesh, kind)())
    for rpc in PROBES:
        outcome = call(mesh.channel(rpc), rpc, rpc.request_class(), metadata_for(mesh, token))
        assert outcome.code != grpc.StatusCode.UNAUTHENTICATED, describe(rpc, None, outcome)
    validated: Any = mesh.ok(
        "auth",
        "ValidateToken",
        auth_pb2.ValidateTokenRequest(token=token),
        mesh.service_metadata,
    )
    assert validated.valid, validated


def test_extreme_header_values_are_refused(mesh: Mesh) -> None:
    """alg, kid, crit and an extra member with extreme values: refused before any key is used."""
    wrong: list[str] = []
    for name, values in HEADER_EDGES.items():
        for value in values:
            header = {"alg": "ES256", "typ": "JWT", "kid": mesh.signing_key.kid, name: value}
            token = with_raw_header(header, user_claims(mesh.admin.user_id))
            label = f"header {name}={value!r:.40}"
            wrong += _judge_probes(mesh, bearer(token), label)
            wrong += _judge_validation(mesh, token, label)
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)
