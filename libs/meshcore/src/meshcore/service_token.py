"""The seed's ``x-service-token``: an HS256 JWT a service signs for its own outgoing calls.

Signed with ``SERVICE_TOKEN_SECRET`` (``{serviceId, serviceName, permissions}`` as in the seed,
plus ``sub``, ``typ``, ``iat`` and ``exp``), cached, and re-signed when 80 % of its lifetime has
passed, so the client interceptors can ask for it on every call at no cost. Each service declares
the permissions it needs from its peers and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable

import jwt

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.settings import Secret, ServiceSettings

__all__ = ["ServiceTokenSigner"]


class ServiceTokenSigner:
    def __init__(
        self,
        secret: Secret,
        *,
        service_id: str,
        service_name: str,
        permissions: Iterable[str],
        lifetime_seconds: float = 600.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._secret = secret
        self._service_id = service_id
        self._service_name = service_name
        self._permissions = sorted(permissions)
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0

    @classmethod
    def for_service(
        cls,
        settings: ServiceSettings,
        display_name: str,
        permissions: Iterable[str],
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> ServiceTokenSigner:
        """The signer a service uses for its own calls: its name as ``serviceId``, the secret
        from its settings, and only the ``permissions`` it needs from its peers."""
        return cls(
            settings.service_token_secret,
            service_id=settings.service_name,
            service_name=display_name,
            permissions=permissions,
            clock=clock,
        )

    def __call__(self) -> str:
        """The current token (a ``TokenProvider`` for meshcore's client interceptors)."""
        now = self._clock.time()
        if self._token is None or now >= self._renew_at:
            issued = int(now)
            claims = {
                "sub": self._service_id,
                "serviceId": self._service_id,
                "serviceName": self._service_name,
                "permissions": self._permissions,
                "typ": "service",
                "iat": issued,
                "exp": issued + int(self._lifetime),
            }
            self._token = jwt.encode(claims, self._secret.reveal(), algorithm="HS256")
            self._renew_at = now + 0.8 * self._lifetime
        return self._token
