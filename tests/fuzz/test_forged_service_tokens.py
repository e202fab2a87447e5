"""Forged service tokens: with every secret and key anyone can read in the repository, and with
the classic algorithm tricks, nobody becomes a service.

Only Auth proves a service (ES256 tokens from IssueServiceToken, verified through its JWKS with
issuer and audience). So a token signed with any string or private key committed to the
repository (the old shared ``SERVICE_TOKEN_SECRET`` values among them), HS256 keyed with Auth's
own public key, ES256 from an attacker's key claiming Auth's ``kid``, or ``alg: none`` must get
UNAUTHENTICATED from every protected RPC of every service, in ``x-service-token`` or as a bearer
token claiming ``typ: service``; each claims a platform service's name, every permission there is
and the admin role, so nothing but the signature can explain the refusal. Public RPCs (Auth's
sign-in methods) ignore credentials: there a forged token must change nothing compared with no
token at all.

Each forged token is sent to at least one RPC (round robin over every RPC, then a seeded random
sample), which keeps the run to seconds while covering every candidate and every RPC.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from meshcore.jwt import SigningKey
from zoptal.auth.v1 import auth_pb2
from zoptal_auth.platform_services import PLATFORM_SERVICES

from tests.fuzz.calls import Metadata, Outcome, bearer, call, describe, service_header
from tests.fuzz.catalogue import ALL_RPCS, PROTECTED_RPCS, Rpc
from tests.fuzz.conftest import Mesh
from tests.fuzz.repository_secrets import KNOWN_OLD_SECRETS, repository_secrets
from tests.fuzz.tokens import forged_es256, hand_signed_hs256, service_claims, unsigned

SEED = 20_261_128
EXTRA_CALLS = 1_500
"""Random (token, RPC) pairs on top of the round robin, to vary which token meets which RPC."""
SERVICES = tuple(PLATFORM_SERVICES)


@dataclass(frozen=True)
class Forgery:
    label: str  # names the candidate and the claimed service, never the secret itself
    metadata: Metadata


def _jwks(mesh: Mesh) -> dict[str, Any]:
    with urllib.request.urlopen(mesh.jwks_url, timeout=10) as reply:  # noqa: S310 - our own URL
        document: dict[str, Any] = json.loads(reply.read())
    return document


def _public_key_materials(jwks: dict[str, Any]) -> Iterator[tuple[str, str, bytes]]:
    """(label, kid, bytes) an attacker can make of each published key, to use as an HMAC key."""
    yield "the JWKS document", "", json.dumps(jwks).encode()
    for jwk in jwks["keys"]:
        kid = jwk["kid"]
        public = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(jwk))
        pem = public.public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        der = public.public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        point = public.public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        yield f"public key {kid[:8]} as PEM", kid, pem
        yield f"public key {kid[:8]} as PEM without newline", kid, pem.strip()
        yield f"public key {kid[:8]} as DER", kid, der
        yield f"public key {kid[:8]} as point", kid, point
        yield f"public key {kid[:8]} as JWK", kid, json.dumps(jwk).encode()


def _both_headers(label: str, token: str) -> Iterator[Forgery]:
    yield Forgery(f"{label} in x-service-token", service_header(token))
    yield Forgery(f"{label} as bearer", bearer(token))


def _forgeries(mesh: Mesh) -> list[Forgery]:
    secrets = repository_secrets()
    jwks = _jwks(mesh)
    auth_kids = [jwk["kid"] for jwk in jwks["keys"]]
    forged: list[Forgery] = []
    for index, secret in enumerate(secrets.strings):
        for service in SERVICES:
            token = hand_signed_hs256(service_claims(service), secret.encode())
            forged.extend(_both_headers(f"HS256 repository string #{index} as {service}", token))
    for label, kid, material in _public_key_materials(jwks):
        for service in SERVICES:
            for claimed_kid in {kid or None, None}:
                token = hand_signed_hs256(service_claims(service), material, claimed_kid)
                forged.extend(_both_headers(f"HS256 keyed with {label} as {service}", token))
    for index, pem in enumerate(secrets.private_keys):
        private = serialization.load_pem_private_key(pem, password=None)
        algorithm = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
        if isinstance(private, ed25519.Ed25519PrivateKey):
            algorithm = "EdDSA"
        own_kid = SigningKey.from_pem(pem).kid if algorithm != "RS256" else f"committed-{index}"
        for service in SERVICES:
            for kid in (own_kid, *auth_kids):  # its own id, and Auth's
                token = jwt.encode(
                    service_claims(service),
                    private,  # type: ignore[arg-type]
                    algorithm=algorithm,
                    headers={"kid": kid},
                )
                forged.extend(
                    _both_headers(f"committed key #{index} ({kid[:8]}) as {service}", token)
                )
    for service in SERVICES:
        for kid in auth_kids:
            token = forged_es256(service_claims(service), kid)
            forged.extend(_both_headers(f"ES256 fresh key claiming Auth's kid as {service}", token))
            forged.extend(
                _both_headers(
                    f"alg none with Auth's kid as {service}", unsigned(service_claims(service), kid)
                )
            )
        forged.extend(_both_headers(f"alg none as {service}", unsigned(service_claims(service))))
    return forged


@pytest.fixture(scope="module")
def forgeries(mesh: Mesh) -> list[Forgery]:
    return _forgeries(mesh)


def _empty_request(rpc: Rpc) -> Any:
    return [] if rpc.client_streaming else rpc.request_class()


def _pairs(forged: list[Forgery], rpcs: tuple[Rpc, ...]) -> list[tuple[Forgery, Rpc]]:
    """Every forgery and every RPC at least once (round robin), then a seeded random sample."""
    rounds = max(len(forged), len(rpcs))
    pairs = [(forged[i % len(forged)], rpcs[i % len(rpcs)]) for i in range(rounds)]
    chooser = random.Random(SEED)
    pairs += [(chooser.choice(forged), chooser.choice(rpcs)) for _ in range(EXTRA_CALLS)]
    return pairs


def test_the_candidates_are_every_secret_and_key_in_the_repository(
    forgeries: list[Forgery],
) -> None:
    """The forge test cannot pass vacuously: the scan found secrets, the old shared ones too."""
    found = repository_secrets()
    assert found.files_read > 100
    assert len(found.strings) > 20
    for old in KNOWN_OLD_SECRETS:
        assert old in found.strings
    # k8s/base/dev-jwt-signing-key.pem was committed once: its history keeps it.
    assert found.private_keys, "the development signing key once committed must be tried"
    assert len(forgeries) >= 2 * len(SERVICES) * len(found.strings)


def test_forged_service_tokens_are_unauthenticated_on_every_protected_rpc(
    mesh: Mesh, forgeries: list[Forgery]
) -> None:
    """Every forgery, on protected RPCs of every service: UNAUTHENTICATED, nothing else."""
    wrong: list[str] = []
    covered: set[str] = set()
    for forgery, rpc in _pairs(forgeries, PROTECTED_RPCS):
        request = _empty_request(rpc)
        outcome = call(mesh.channel(rpc), rpc, request, forgery.metadata)
        covered.add(str(rpc))
        if outcome.code != grpc.StatusCode.UNAUTHENTICATED:
            wrong.append(f"{forgery.label}: {describe(rpc, request, outcome)}")
    assert covered == {str(rpc) for rpc in PROTECTED_RPCS}
    assert not wrong, f"{len(wrong)} forged calls not refused:\n" + "\n".join(wrong[:40])


def _same_answer(rpc: Rpc, forged: Outcome, anonymous: Outcome) -> bool:
    """Same status; for GetJwks the same keys too (HealthCheck's reply carries a clock)."""
    if rpc.method.name == "GetJwks" and forged.code == grpc.StatusCode.OK:
        return forged.response == anonymous.response
    return forged.code == anonymous.code


def test_forged_service_tokens_change_nothing_on_public_rpcs(
    mesh: Mesh, forgeries: list[Forgery]
) -> None:
    """Public RPCs (sign-in, JWKS, health) take no credentials: a forgery answers as no token."""
    public = tuple(rpc for rpc in ALL_RPCS if rpc.public)
    assert public
    anonymous = {str(rpc): call(mesh.channel(rpc), rpc, _empty_request(rpc), ()) for rpc in public}
    wrong: list[str] = []
    for forgery, rpc in _pairs(forgeries, public)[: len(forgeries) // 4 + len(public)]:
        request = _empty_request(rpc)
        outcome = call(mesh.channel(rpc), rpc, request, forgery.metadata)
        if not _same_answer(rpc, outcome, anonymous[str(rpc)]):
            wrong.append(f"{forgery.label}: {describe(rpc, request, outcome)}")
    assert not wrong, "\n".join(wrong[:40])


@pytest.mark.parametrize("service", SERVICES)
def test_a_genuine_service_token_passes_authentication(mesh: Mesh, service: str) -> None:
    """Control: the token Auth issues for the service's own credential file is accepted (every
    platform service may list revocations), so the refusals above are the forgeries'."""
    rpc = next(r for r in PROTECTED_RPCS if r.method.name == "ListRevocations")
    outcome = call(
        mesh.channel(rpc), rpc, auth_pb2.ListRevocationsRequest(), mesh.as_service(service)
    )
    assert outcome.code == grpc.StatusCode.OK, describe(rpc, None, outcome)


def test_a_genuine_service_token_passes_authentication_on_every_service(mesh: Mesh) -> None:
    """Control on every service: the operator's real token is never UNAUTHENTICATED."""
    for rpc in PROTECTED_RPCS:
        request = _empty_request(rpc)
        outcome = call(mesh.channel(rpc), rpc, request, mesh.service_metadata)
        assert outcome.code != grpc.StatusCode.UNAUTHENTICATED, describe(rpc, request, outcome)
