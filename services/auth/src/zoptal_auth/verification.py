"""Every access token the platform accepts, checked by one object.

* ES256/EdDSA tokens signed by this service's keys (users and service accounts);
* HS256 user tokens signed with ``JWT_SECRET``, only when it is configured (seed compatibility);
* HS256 service tokens signed with ``SERVICE_TOKEN_SECRET`` (the seed's ``x-service-token``).

The two HMAC secrets are never interchangeable: a token that calls itself a service token is
checked with the service secret only, anything else with the user secret only.

ValidateToken is the platform's hottest RPC and the same token is validated again and again
during its life, so successful verifications are cached by the exact token string (bounded,
each entry dropped when its token expires). A hit skips only the signature and JSON work: the
expiry is checked against the clock on every call and revocation is checked by the caller.
"""

from __future__ import annotations

import base64
import json

from meshcore.clock import Clock
from meshcore.jwt import HMAC_ALGORITHMS, InvalidToken, StaticKeys, TokenVerifier, VerifiedToken

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
        cache_size: int = 10_000,
    ) -> None:
        self._clock = clock
        self._leeway = leeway
        self._cache: dict[str, VerifiedToken] = {}
        self._cache_size = cache_size
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
        cached = self._cache.get(token)
        if cached is not None:
            if self._clock.time() < cached.expires_at + self._leeway:
                return cached
            del self._cache[token]
        verified = await self._verify_uncached(token)
        if self._cache_size > 0:
            while len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))  # oldest first: O(1), no reordering
            self._cache[token] = verified
        return verified

    async def _verify_uncached(self, token: str) -> VerifiedToken:
        try:
            return await self._tokens.verify(token)
        except InvalidToken as invalid:
            # Only an HS* token that says it is a service token gets a second opinion, from the
            # service secret; checked after the fact so the common path parses nothing twice.
            if (
                self._seed_service_tokens is None
                or invalid.reason not in ("algorithm_not_allowed", "bad_signature")
                or not _is_hmac_service_token(token)
            ):
                raise
        return await self._seed_service_tokens.verify(token, expected_type="service")


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
