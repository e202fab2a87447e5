"""What the Auth service signs: access tokens, service tokens and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from meshcore.clock import Clock

from zoptal_auth.keys import KeyRing

__all__ = ["SignedToken", "TokenIssuer", "hash_refresh_token", "new_refresh_token"]

REFRESH_TOKEN_PREFIX = "rt_"  # noqa: S105 - a public marker, not a secret


@dataclass(frozen=True)
class SignedToken:
    token: str
    token_id: str
    issued_at: float
    expires_at: float


def new_refresh_token() -> str:
    """256 random bits; the prefix lets RevokeToken tell it from a JWT at a glance."""
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """SHA-256 is enough here: the token is random, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenIssuer:
    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        audience: str,
        access_ttl: float,
        service_ttl: float,
        clock: Clock,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._access_ttl = access_ttl
        self._service_ttl = service_ttl
        self._clock = clock

    def access_token(
        self,
        *,
        user_id: str,
        email: str,
        roles: Iterable[str],
        permissions: Iterable[str],
        session_id: str,
    ) -> SignedToken:
        """A user access token; ``sid`` names its refresh family so revoking that kills it too."""
        return self._sign(
            {
                "sub": user_id,
                "email": email,
                "roles": sorted(roles),
                "permissions": sorted(permissions),
                "typ": "access",
                "sid": session_id,
            },
            self._access_ttl,
        )

    def service_token(
        self,
        *,
        service_id: str,
        service_name: str,
        permissions: Iterable[str],
        credential_id: str,
    ) -> SignedToken:
        """A service token; ``sid`` names the credential it was issued for, so revoking that
        credential (a session revocation) kills the token too."""
        return self._sign(
            {
                "sub": service_id,
                "serviceId": service_id,
                "serviceName": service_name,
                "permissions": sorted(permissions),
                "typ": "service",
                "sid": credential_id,
            },
            self._service_ttl,
        )

    def _sign(self, claims: dict[str, object], ttl: float) -> SignedToken:
        now = int(self._clock.time())
        token_id = uuid.uuid4().hex
        claims.update(
            iss=self._issuer, aud=self._audience, iat=now, nbf=now, exp=now + int(ttl), jti=token_id
        )
        token = self._keys.current.sign(claims)
        return SignedToken(token=token, token_id=token_id, issued_at=now, expires_at=now + int(ttl))
