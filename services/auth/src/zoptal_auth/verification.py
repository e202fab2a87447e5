"""Every access token the platform accepts, checked by one object.

* ES256/EdDSA tokens signed by this service's keys: users' access tokens and the service tokens
  IssueServiceToken gives each service account (issuer, audience and ``typ`` checked alike);
* HS256 user tokens signed with ``JWT_SECRET``, only when it is configured (seed compatibility).

There is no shared service-token secret: a service proves who it is with a credential of its
own and carries what this service signed for it.

ValidateToken is the platform's hottest RPC and the same token is validated again and again
during its life, so successful verifications are cached by the exact token string (bounded,
each entry dropped when its token expires). A hit skips only the signature and JSON work: the
expiry is checked against the clock on every call and revocation is checked by the caller.
"""

from __future__ import annotations

from meshcore.clock import Clock
from meshcore.jwt import InvalidToken, StaticKeys, TokenVerifier, VerifiedToken

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
        self._signed = TokenVerifier(
            keys.verification_keys(),
            issuer=issuer,
            audience=audience,
            algorithms=keys.algorithms,
            leeway=leeway,
            clock=clock,
        )
        # HS256 only ever proves a user: whoever holds JWT_SECRET could otherwise mint any
        # service's token, which is exactly the shared secret service identity must not be.
        self._hmac_users = (
            TokenVerifier(
                StaticKeys(hmac_secret=jwt_secret),
                issuer=issuer,
                audience=audience,
                algorithms=["HS256"],
                leeway=leeway,
                clock=clock,
            )
            if jwt_secret
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
            return await self._signed.verify(token)
        except InvalidToken as invalid:
            if self._hmac_users is None or invalid.reason != "algorithm_not_allowed":
                raise
        return await self._hmac_users.verify(token, expected_type="user")
