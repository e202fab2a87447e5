"""``RemoteJwks``: the Auth service's public keys, fetched over HTTP and cached.

* The HTTP fetch runs in a worker thread (``asyncio.to_thread``), never on the event loop.
* Keys are cached and refreshed every ``refresh_interval`` seconds; concurrent callers share one
  fetch (single flight).
* A token naming an unknown ``kid`` (a key rotated in since the last fetch) triggers a refetch at
  once, but at most one fetch per ``min_refetch_interval`` (5 s) and one at a time: a client
  spraying random ``kid``s costs the Auth service one request per verifier every 5 s, never one
  per call. Auth publishes a rotated-in key long before it signs with it (longer than
  ``refresh_interval``), so this refetch is the fallback for a key that went live early, not
  the rotation path.
* When a refresh fails, the keys we already have stay in use; with no keys at all the verifier
  gets ``Unavailable`` (a dependency is down), not "bad token".
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import Unavailable
from meshcore.jwt import HMAC_ALGORITHMS, InvalidToken, StaticKeys

__all__ = ["JwksFetcher", "RemoteJwks", "fetch_jwks_over_http"]

_log = logging.getLogger("meshcore.jwks")

JwksFetcher = Callable[[str, float], Sequence[Mapping[str, Any]]]
"""Blocking ``(url, timeout) -> keys``; run in a thread by ``RemoteJwks``."""

_MAX_JWKS_BYTES = 1024 * 1024


def fetch_jwks_over_http(url: str, timeout: float) -> Sequence[Mapping[str, Any]]:
    """GET ``url`` and return its ``keys`` array (blocking: call it from a thread)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"JWKS URL must be http(s): {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        document = json.loads(response.read(_MAX_JWKS_BYTES))
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("JWKS document has no 'keys' array")
    return [key for key in keys if isinstance(key, dict)]


class RemoteJwks:
    """A ``meshcore.jwt.KeySource`` over a JWKS URL (``AUTH_JWKS_URL``)."""

    def __init__(
        self,
        url: str,
        *,
        refresh_interval: float = 300.0,
        min_refetch_interval: float = 5.0,
        timeout: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
        fetcher: JwksFetcher = fetch_jwks_over_http,
    ) -> None:
        self.url = url
        self._refresh_interval = refresh_interval
        self._min_refetch_interval = min_refetch_interval
        self._timeout = timeout
        self._clock = clock
        self._fetcher = fetcher
        self._keys: StaticKeys | None = None
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        if algorithm in HMAC_ALGORITHMS:
            raise InvalidToken("unknown_key", "a JWKS never holds HMAC keys")
        keys = await self._current_keys()
        try:
            return await keys.key_for(kid, algorithm)
        except InvalidToken:
            if not self._may_refetch():
                raise
        keys = await self._refresh(force=True)
        return await keys.key_for(kid, algorithm)

    async def _current_keys(self) -> StaticKeys:
        now = self._clock.monotonic()
        if (
            self._keys is not None
            and self._fetched_at is not None
            and now - self._fetched_at < self._refresh_interval
        ):
            return self._keys
        return await self._refresh(force=False)

    def _may_refetch(self) -> bool:
        attempted = self._attempted_at
        return (
            attempted is None or self._clock.monotonic() - attempted >= self._min_refetch_interval
        )

    async def _refresh(self, *, force: bool) -> StaticKeys:
        async with self._lock:
            now = self._clock.monotonic()
            fresh = self._fetched_at is not None and now - self._fetched_at < self._refresh_interval
            if self._keys is not None and ((fresh and not force) or not self._may_refetch()):
                # Another caller refreshed while we waited, or we tried moments ago.
                return self._keys
            self._attempted_at = now
            try:
                self.fetch_count += 1
                jwks = await asyncio.to_thread(self._fetcher, self.url, self._timeout)
                self._keys = StaticKeys(jwks)
                self._fetched_at = self._clock.monotonic()
            except Exception as error:  # any failure: keep what we have
                _log.warning("fetching JWKS from %s failed: %s", self.url, error)
                if self._keys is None:
                    raise Unavailable.of_dependency(
                        "auth", "signing keys are unavailable"
                    ) from error
            return self._keys
