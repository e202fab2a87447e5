"""HealthCheck's detail: can we reach the database, and can we sign and verify a token?"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.errors import MeshError
from meshcore.jwt import InvalidToken

from zoptal_auth.domain import DependencyReport
from zoptal_auth.keys import KeyRing
from zoptal_auth.verification import AccessTokenVerifier

__all__ = ["HealthReporter"]


class HealthReporter:
    def __init__(
        self,
        database: Database,
        keys: KeyRing,
        verifier: AccessTokenVerifier,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._database = database
        self._keys = keys
        self._verifier = verifier
        self._clock = clock

    async def report(self) -> list[DependencyReport]:
        """One report per dependency, sorted by name."""
        return [
            await _probe("database", self._ping_database),
            await _probe("signing_key", self._sign_and_verify),
        ]

    async def _ping_database(self) -> str:
        await self._database.ping()
        return self._database.dialect

    async def check_signing_key(self) -> None:
        """For grpc.health: raises when the current key cannot produce a verifiable token."""
        await self._sign_and_verify()

    async def _sign_and_verify(self) -> str:
        key = self._keys.current
        # A probe token: verifiable by our own verifier, useless elsewhere (expired at once
        # outside this call, and it names no real subject).
        now = int(self._clock.time())
        probe = key.sign(
            {
                "sub": f"health-probe-{uuid.uuid4().hex[:8]}",
                "typ": "access",
                "iss": self._verifier.issuer,
                "aud": self._verifier.audience,
                "iat": now,
                "exp": now + 5,
            }
        )
        await self._verifier.verify(probe)
        return f"{key.algorithm} key {key.kid} signs; {len(self._keys.jwks()['keys'])} published"


async def _probe(name: str, check: Callable[[], Awaitable[str]]) -> DependencyReport:
    started = time.perf_counter()
    try:
        detail = await check()
        healthy = True
    except InvalidToken as error:
        detail, healthy = f"signing key does not verify: {error.reason}", False
    except MeshError as error:
        detail, healthy = error.message, False
    except Exception as error:  # a report names the failure instead of failing itself
        # Only the type: driver messages may quote connection strings.
        detail, healthy = type(error).__name__, False
    return DependencyReport(name, healthy, detail, time.perf_counter() - started)
