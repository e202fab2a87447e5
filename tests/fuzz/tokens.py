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
    "hand_signed_hs256",
    "hs256_service_token",
    "service_claims",
    "unsigned",
    "user_claims",
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
