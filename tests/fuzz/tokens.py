"""Hostile tokens: each one valid in every respect but the one under attack.

Built with PyJWT and cryptography; the byte-level ones (``alg: none``, HS256 keyed with the
public key) are assembled by hand because PyJWT refuses to make them, which is the point.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from meshcore.jwt import SigningKey

__all__ = [
    "ALL_SERVICE_PERMISSIONS",
    "SERVICE_CLAIM_EDGES",
    "USER_CLAIM_EDGES",
    "Raw",
    "hand_signed_hs256",
    "hs256_service_token",
    "service_claims",
    "signed_raw",
    "unsigned",
    "user_claims",
    "with_raw_header",
]

ALL_SERVICE_PERMISSIONS = (
    "user:read",
    "user:validate",
    "service_account:create",
    "project:create",
    "project:read",
    "project:update",
    "project:write",
    "project:delete",
    "billing:read",
    "billing:write",
    "notification:send",
    "notification:read",
    "analytics:write",
    "analytics:read",
    "revocation:read",
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def user_claims(subject: str, **overrides: Any) -> dict[str, Any]:
    """Claims of a plausible user access token issued by the platform's Auth, now."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "email": "mallory@example.com",
        "roles": ["admin"],
        "permissions": list(ALL_SERVICE_PERMISSIONS),
        "typ": "access",
        "sid": uuid.uuid4().hex,
        "iss": "zoptal-auth",
        "aud": "zoptal",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def service_claims(service: str = "project", **overrides: Any) -> dict[str, Any]:
    """Claims of a plausible service token as Auth's IssueServiceToken signs them, now, for the
    platform service ``service`` (claiming every permission and, for good measure, admin)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": service,
        "serviceId": service,
        "serviceName": service,
        "permissions": list(ALL_SERVICE_PERMISSIONS),
        "roles": ["admin"],
        "typ": "service",
        "sid": str(uuid.uuid4()),
        "iss": "zoptal-auth",
        "aud": "zoptal",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def hs256_service_token(secret: str | bytes, **overrides: Any) -> str:
    """A service token signed HS256 with ``secret``: what a shared service secret used to mint."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hand_signed_hs256(service_claims(**overrides), key)


def unsigned(claims: Mapping[str, Any], kid: str | None = None) -> str:
    """``alg: none``: no signature at all."""
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    return f"{_segment(header)}.{_segment(claims)}."


def hand_signed_hs256(claims: Mapping[str, Any], key: bytes, kid: str | None = None) -> str:
    """HS256 over ``key`` whatever it is (the classic: the server's own public key)."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def forged_es256(claims: Mapping[str, Any], kid: str) -> str:
    """Signed by an attacker's own P-256 key, claiming the real key's ``kid``."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(dict(claims), attacker, algorithm="ES256", headers={"kid": kid})


def public_key_pem(key: SigningKey) -> bytes:
    """The PEM of the real signing key's public half (what an attacker can download)."""
    public = serialization.load_pem_private_key(key.private_pem(), password=None).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class Raw:
    """A JSON literal written as is: ``1e999``, ``NaN``, a 2,000-deep array (what json.dumps
    will not write, or writes only as Python's own spelling)."""

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        shown = self.literal if len(self.literal) < 24 else self.literal[:21] + "..."
        return f"Raw({shown})"


def json_text(value: Mapping[str, Any]) -> str:
    """``value`` as compact JSON, each ``Raw`` replaced by its literal."""
    literals: dict[str, str] = {}

    def swap(item: Any) -> Any:
        if isinstance(item, Raw):
            marker = f"@raw-{len(literals)}@"
            literals[marker] = item.literal
            return marker
        if isinstance(item, dict):
            return {key: swap(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [swap(inner) for inner in item]
        return item

    text = json.dumps(swap(dict(value)), separators=(",", ":"))
    for marker, literal in literals.items():
        text = text.replace(json.dumps(marker), literal)
    return text


def signed_raw(key: SigningKey, claims: Mapping[str, Any]) -> str:
    """``claims`` (``Raw`` literals included) signed by ``key`` exactly as written."""
    return jwt.api_jws.PyJWS().encode(
        json_text(claims).encode(),
        key.private_pem(),
        algorithm=key.algorithm,
        headers={"kid": key.kid},
    )


def with_raw_header(header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    """A token whose header is ``header`` as written (``Raw`` included) and whose signature is
    junk: header attacks are judged before any signature is checked."""
    encoded = [_b64(json_text(part).encode()) for part in (header, payload)]
    return f"{encoded[0]}.{encoded[1]}.{_b64(b'not a signature')}"


_DEEP = Raw("[" * 2_000 + "]" * 2_000)  # deeper than Python's recursion limit lets json parse
# Long values stay well under gRPC's 8 KiB metadata soft limit: past it the transport refuses the
# call (RESOURCE_EXHAUSTED) before any token check, which would test grpc, not the verifier.
# Wrong for every registered claim, whatever its kind.
_ANY_CLAIM_EDGES: tuple[Any, ...] = (
    10**400,
    -(10**400),
    Raw("1e999"),  # a float infinity once parsed
    Raw("-1e999"),
    Raw("NaN"),
    Raw("Infinity"),
    1e308,
    -1e308,
    2**63,
    2**64,
    None,
    True,
    False,
    {"$gt": 0},
    _DEEP,
    [0] * 1_500,
)
TIME_CLAIM_EDGES = (
    *_ANY_CLAIM_EDGES,
    -1,
    -62_135_596_801,
    253_402_300_800,  # the first second of year 10000
    "1700000000",
    "NaN",
    "1e999",
    [1_700_000_000],
    {},
)
TEXT_CLAIM_EDGES = (*_ANY_CLAIM_EDGES, "", "a" * 3_000, 0, -1, 5e-324, -0.0, [], ["a"])
LIST_CLAIM_EDGES = (
    *_ANY_CLAIM_EDGES,
    "admin",
    ["x"] * 1_000,
    [["admin"]],
    [{"admin": True}],
    ["a" * 3_000],
    [Raw("1e999")],
    [None],
)
AUDIENCE_EDGES = (
    *LIST_CLAIM_EDGES,
    [*(["x"] * 1_000), "zoptal"],  # ours among too many
    [{"a": 1}, "zoptal"],  # ours beside something that is not an audience
)
_CLAIM_KINDS = {
    "exp": TIME_CLAIM_EDGES,
    "nbf": TIME_CLAIM_EDGES,
    "iat": TIME_CLAIM_EDGES,
    "iss": TEXT_CLAIM_EDGES,
    "sub": TEXT_CLAIM_EDGES,
    "jti": TEXT_CLAIM_EDGES,
    "sid": TEXT_CLAIM_EDGES,
    "typ": TEXT_CLAIM_EDGES,
    "aud": AUDIENCE_EDGES,
    "roles": LIST_CLAIM_EDGES,
    "permissions": LIST_CLAIM_EDGES,
}
USER_CLAIM_EDGES: dict[str, tuple[Any, ...]] = {**_CLAIM_KINDS, "email": TEXT_CLAIM_EDGES}
"""Every claim a user access token carries, each with the values no token of ours can hold."""
SERVICE_CLAIM_EDGES: dict[str, tuple[Any, ...]] = {
    **_CLAIM_KINDS,
    "serviceId": TEXT_CLAIM_EDGES,
    "serviceName": TEXT_CLAIM_EDGES,
}
"""Every claim a service token carries (roles too: present, it must still be well formed)."""
