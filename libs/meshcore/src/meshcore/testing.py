"""Test helpers that users of meshcore can import too.

``FakeClock`` moves only when told to. ``serve_in_process`` starts servicers on ``127.0.0.1:0``
behind the production interceptors (or the ones given) and yields the address and a channel.
``TokenMint`` signs user and service tokens as an issuer would, with a key made for the test;
servers trust it through ``key_source=mint.keys``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

    from meshcore.health import DependencyCheck
    from meshcore.server import MeshServer, ServiceRegistration, ShutdownHook
    from meshcore.settings import ServiceSettings

__all__ = ["FakeClock", "InProcessServer", "TokenMint", "serve_in_process"]


class FakeClock:
    """A clock that moves only when told to; ``sleep`` waits until ``advance`` passes its time."""

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come (in time order)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def pending_sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())


class TokenMint:
    """An issuer for tests: a fresh ES256 key, and tokens with the claims meshcore checks.

    Pass ``mint.keys`` as the server chain's ``key_source``; nothing signed by another mint (or
    by anything in a repository) verifies there. Tokens last ``DEFAULT_TTL`` unless told
    otherwise: test modules mint some at import, and a whole suite runs for longer than a real
    token would live.
    """

    DEFAULT_TTL = 6 * 3600.0

    def __init__(
        self, *, issuer: str = "zoptal-auth", audience: str = "zoptal", clock: Any = None
    ) -> None:
        from meshcore.clock import SYSTEM_CLOCK
        from meshcore.jwt import SigningKey, StaticKeys

        self.issuer = issuer
        self.audience = audience
        self.signing_key = SigningKey.generate()
        self.keys = StaticKeys([self.signing_key.public_jwk()])
        self._clock = clock if clock is not None else SYSTEM_CLOCK

    def sign(self, claims: Mapping[str, Any], *, ttl: float = DEFAULT_TTL) -> str:
        """``claims`` plus issuer, audience, ``iat`` and ``exp`` (each may be overridden)."""
        now = int(self._clock.time())
        full = {"iss": self.issuer, "aud": self.audience, "iat": now, "exp": now + int(ttl)}
        full.update(claims)
        return self.signing_key.sign(full)

    def service_token(
        self,
        service: str,
        permissions: Iterable[str] = (),
        *,
        ttl: float = DEFAULT_TTL,
        **claims: Any,
    ) -> str:
        """A service token as an issuer grants it: ``serviceName`` is ``service``."""
        base = {
            "sub": service,
            "serviceId": service,
            "serviceName": service,
            "permissions": sorted(permissions),
            "typ": "service",
        }
        return self.sign({**base, **claims}, ttl=ttl)

    def user_token(
        self,
        subject: str,
        permissions: Iterable[str] = (),
        roles: Iterable[str] = ("user",),
        *,
        ttl: float = DEFAULT_TTL,
        **claims: Any,
    ) -> str:
        base = {
            "sub": subject,
            "typ": "access",
            "permissions": sorted(permissions),
            "roles": sorted(roles),
        }
        return self.sign({**base, **claims}, ttl=ttl)

    def as_service(
        self, service: str, *permissions: str, **claims: Any
    ) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying a service token."""
        return (("x-service-token", self.service_token(service, permissions, **claims)),)

    def as_user(
        self, subject: str, *permissions: str, roles: Iterable[str] = ("user",), **claims: Any
    ) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying a user's bearer token."""
        token = self.user_token(subject, permissions, roles, **claims)
        return (("authorization", f"Bearer {token}"),)


@dataclass
class InProcessServer:
    """A running in-process server; unpacks as ``address, channel``."""

    address: str
    channel: grpc.aio.Channel
    server: MeshServer

    def __iter__(self) -> Iterator[Any]:
        return iter((self.address, self.channel))


@contextlib.asynccontextmanager
async def serve_in_process(
    services: Iterable[ServiceRegistration],
    *,
    settings: ServiceSettings | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
    dependency_checks: Mapping[str, DependencyCheck] | None = None,
    on_shutdown: Iterable[ShutdownHook] = (),
    clock: Any = None,
) -> AsyncIterator[InProcessServer]:
    """Serve ``services`` on ``127.0.0.1:0`` for a test; yields ``(address, channel)``.

    ``settings`` default to ``ServiceSettings()``; host, ports and shutdown timings are forced to
    test values (loopback, a free port, metrics off unless ``settings`` asks for a port, no
    drain, a short grace). ``interceptors`` default to the production chain when meshcore has
    one (``meshcore.interceptors.chain.build_server_chain(settings)``), else to
    ``MeshServer``'s default.
    """
    import grpc

    from meshcore.clock import SYSTEM_CLOCK
    from meshcore.server import MeshServer
    from meshcore.settings import ServiceSettings

    base = settings if settings is not None else ServiceSettings()
    effective = replace(
        base,
        grpc_host="127.0.0.1",
        grpc_port=0,
        shutdown_drain_seconds=0.0,
        shutdown_grace_seconds=min(base.shutdown_grace_seconds, 2.0),
    )
    server = MeshServer(
        effective,
        list(services),
        interceptors=interceptors if interceptors is not None else _production_chain(effective),
        dependency_checks=dependency_checks,
        on_shutdown=on_shutdown,
        clock=clock if clock is not None else SYSTEM_CLOCK,
    )
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield InProcessServer(server.address, channel, server)
    finally:
        await channel.close()
        await server.stop()


def _production_chain(settings: ServiceSettings) -> list[grpc.aio.ServerInterceptor] | None:
    try:
        from meshcore.interceptors.chain import (  # type: ignore[import-not-found,unused-ignore]
            build_server_chain,
        )
    except ImportError:
        return None
    return list(build_server_chain(settings))
