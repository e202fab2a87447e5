"""Forged service tokens: everything an attacker who read the repository could sign.

Each claims a platform service's name, every permission there is and the admin role, so nothing
but the signature can explain a refusal: HS256 with every secret-looking string and ES256/EdDSA
with every private key found in the repository and its history (the old shared
``SERVICE_TOKEN_SECRET`` values among them), HS256 keyed with Auth's own public key in every form
an attacker can make of it, ES256 from a fresh key claiming Auth's ``kid``, and ``alg: none``;
each in ``x-service-token`` and as a bearer token. Used against the embedded platform
(test_forged_service_tokens.py) and against the compose stack
(tests/deploy/compose_up/test_journey.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from meshcore.jwt import SigningKey
from zoptal_auth.platform_services import PLATFORM_SERVICES

from tests.fuzz.calls import Metadata, bearer, service_header
from tests.fuzz.repository_secrets import repository_secrets
from tests.fuzz.tokens import forged_es256, hand_signed_hs256, service_claims, unsigned

__all__ = ["SERVICES", "Forgery", "forgeries_for"]

SERVICES = tuple(PLATFORM_SERVICES)


@dataclass(frozen=True)
class Forgery:
    label: str  # names the candidate and the claimed service, never the secret itself
    metadata: Metadata


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


def forgeries_for(jwks: dict[str, Any]) -> list[Forgery]:
    """Every forgery of a service token this module knows, against Auth's published ``jwks``."""
    secrets = repository_secrets()
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
