"""The service's own ``x-service-token``: fetched from an issuer, renewed before it expires.

A service never signs its own token: it proves who it is to the issuer (for Zoptal, Auth's
client-credentials RPC) and carries what the issuer signed. ``ServiceTokenSource`` is the
``TokenProvider`` meshcore's client interceptors ask on every outgoing call: a plain attribute
read, because the fetching happens in one background task that renews the token once
``renew_fraction`` of its lifetime has passed, and retries failures with capped exponential
backoff while the current token is still good.

The fetch itself is injected (``fetch() -> IssuedServiceToken``), so meshcore knows nothing of
the issuer's API; the fetch re-reads the credential each time, which is what makes rotating a
credential a matter of replacing a file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.tasks import cancel_and_wait
from meshcore.timeutil import backoff

__all__ = ["IssuedServiceToken", "ServiceTokenSource"]

logger = logging.getLogger("meshcore.service_token")


@dataclass(frozen=True, slots=True)
class IssuedServiceToken:
    token: str
    expires_at: float
    """Unix time after which the issuer's verifiers refuse the token."""


class ServiceTokenSource:
    """The current service token, kept fresh by ``start()``'s background task."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[IssuedServiceToken]],
        *,
        renew_fraction: float = 0.8,
        first_retry_seconds: float = 0.5,
        max_retry_seconds: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not 0 < renew_fraction < 1:
            raise ValueError("renew_fraction must be between 0 and 1")
        self._fetch = fetch
        self._renew_fraction = renew_fraction
        self._first_retry = first_retry_seconds
        self._max_retry = max_retry_seconds
        self._clock = clock
        self._current: IssuedServiceToken | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> str | None:
        """The token to send now, or None when none is valid (the call then goes without one
        and the peer answers UNAUTHENTICATED, which is the truth)."""
        current = self._current
        if current is None or current.expires_at <= self._clock.time():
            return None
        return current.token

    def start(self) -> None:
        """Start renewing in the background (idempotent); needs a running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._renew_forever(), name="meshcore-service-token"
            )

    async def wait_ready(self) -> None:
        """Return once a first token is there (bound it with ``asyncio.timeout``)."""
        await self._ready.wait()

    async def refresh(self) -> IssuedServiceToken:
        """Fetch a token now (also what the background task does); raises what the fetch raises."""
        issued = await self._fetch()
        self._current = issued
        self._ready.set()
        return issued

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _renew_forever(self) -> None:
        failures = 0
        while True:
            try:
                issued = await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                retry = backoff(failures, self._first_retry, self._max_retry)
                logger.warning(
                    "could not renew the service token (retry in %.1fs): %s", retry, error
                )
                await self._clock.sleep(retry)
                continue
            failures = 0
            lifetime = issued.expires_at - self._clock.time()
            await self._clock.sleep(max(lifetime * self._renew_fraction, self._first_retry))
