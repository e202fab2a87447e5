"""Every access token the platform accepts, checked by one object.

* ES256/EdDSA tokens signed by this service's keys (users and service accounts);
* HS256 user tokens signed with ``JWT_SECRET``, only when it is configured (seed compatibility);
* HS256 service tokens signed with ``SERVICE_TOKEN_SECRET`` (the seed's ``x-service-token``).

The two HMAC secrets are never interchangeable: a token that calls itself a service token is
checked with the service secret only, anything else with the user secret only.
"""

from __future__ import annotations

import base64
import json

from meshcore.clock import Clock
from meshcore.jwt import HMAC_ALGORITHMS, StaticKeys, TokenVerifier, VerifiedToken

from zoptal_auth.keys import KeyRing

__all__ = ["AccessTokenVerifier"]


class AccessTokenVerifier:
    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        audience: str,
        jwt_secret: str | None,
        service_token_secret: str | None,
        leeway: float,
        clock: Clock,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        algorithms = [*keys.algorithms, *(["HS256"] if jwt_secret else [])]
        self._tokens = TokenVerifier(
            keys.verification_keys(jwt_secret),
            issuer=issuer,
            audience=audience,
            algorithms=algorithms,
            leeway=leeway,
            clock=clock,
        )
        # Seed service tokens carry neither iss nor aud; they must still expire.
        self._seed_service_tokens = (
            TokenVerifier(
                StaticKeys(hmac_secret=service_token_secret),
                issuer=None,
                audience=None,
                algorithms=["HS256"],
                leeway=leeway,
                clock=clock,
            )
            if service_token_secret
            else None
        )

    async def verify(self, token: str) -> VerifiedToken:
        if self._seed_service_tokens is not None and _is_hmac_service_token(token):
            return await self._seed_service_tokens.verify(token, expected_type="service")
        return await self._tokens.verify(token)


def _is_hmac_service_token(token: str) -> bool:
    """A cheap, unverified peek: HS* header and a payload that says it is a service token."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(_unpad(parts[0]))
        if not isinstance(header, dict) or header.get("alg") not in HMAC_ALGORITHMS:
            return False
        payload = json.loads(_unpad(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(payload, dict) and (payload.get("typ") == "service" or "serviceId" in payload)


def _unpad(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
