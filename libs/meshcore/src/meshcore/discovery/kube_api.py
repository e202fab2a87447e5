"""The two Kubernetes API calls discovery needs: list and watch EndpointSlices, over httpx.

Only ``discovery.k8s.io/v1`` EndpointSlices labelled ``kubernetes.io/service-name=<service>``
are read, which is all the RBAC a caller needs (get/list/watch on ``endpointslices``). Errors
the API server reports as ``Status`` objects (an HTTP status, or an ``ERROR`` watch event)
become ``KubeApiError``; 410 Gone, "your resourceVersion is too old", is ``ResourceExpired`` so
the watcher knows to list again.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.discovery.kubeconfig import KubeConfig

__all__ = [
    "SERVICE_NAME_LABEL",
    "BearerToken",
    "KubeApiClient",
    "KubeApiError",
    "ResourceExpired",
    "WatchEvent",
]

logger = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label the EndpointSlice controller puts on every slice of a Service."""

_LIST_PAGE_SIZE = 500


class KubeApiError(Exception):
    """The API server refused or failed a request (``status`` is the HTTP-style code)."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"Kubernetes API {status} {reason}: {message}".rstrip(": "))
        self.status = status
        self.reason = reason


class ResourceExpired(KubeApiError):
    """410 Gone: the resourceVersion (or continue token) was compacted away; list again."""


@dataclass(frozen=True)
class WatchEvent:
    """One line of a watch stream: ADDED, MODIFIED, DELETED, BOOKMARK (ERROR is raised)."""

    type: str
    object: Mapping[str, Any]

    @property
    def resource_version(self) -> str | None:
        version = (self.object.get("metadata") or {}).get("resourceVersion")
        return str(version) if version else None


class BearerToken:
    """The token to send, re-read from its file at most every ``refresh_seconds``.

    Projected service account tokens are bound and short-lived: the kubelet rewrites the file
    before expiry, so a token read once at start-up stops working after about an hour.
    client-go re-reads every minute; so does this.
    """

    def __init__(
        self, config: KubeConfig, *, clock: Clock = SYSTEM_CLOCK, refresh_seconds: float = 60.0
    ) -> None:
        self._static = config.token
        self._file = config.token_file
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._cached: str | None = None
        self._read_at: float | None = None

    def current(self) -> str | None:
        if self._file is None:
            return self._static
        now = self._clock.monotonic()
        if self._read_at is None or now - self._read_at >= self._refresh_seconds:
            try:
                self._cached = Path(self._file).read_text().strip() or self._cached
            except OSError as error:
                # Keep the last good token: a rotation in progress is no reason to go blind.
                logger.warning("cannot re-read Kubernetes token %s: %s", self._file, error)
            self._read_at = now
        return self._cached or self._static


class KubeApiClient:
    """List and watch EndpointSlices on one API server; one pooled HTTP client for both."""

    def __init__(
        self,
        config: KubeConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.AsyncBaseTransport | None = None,
        request_timeout: float = 30.0,
        token_refresh_seconds: float = 60.0,
    ) -> None:
        self.config = config
        self._token = BearerToken(config, clock=clock, refresh_seconds=token_refresh_seconds)
        self._request_timeout = request_timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Made on first use, inside the running loop: constructing discovery opens nothing.
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self.config.server.startswith("https://"):
                verify = self.config.ssl_context()
            self._client = httpx.AsyncClient(
                base_url=self.config.server,
                verify=verify,
                transport=self._transport,
                timeout=self._request_timeout,
                headers={"Accept": "application/json", "User-Agent": "meshcore-discovery"},
            )
        return self._client

    def _headers(self) -> dict[str, str]:
        token = self._token.current()
        return {"Authorization": f"Bearer {token}"} if token else {}

    @staticmethod
    def _path(namespace: str) -> str:
        return f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"

    async def list_endpoint_slices(
        self, namespace: str, service: str
    ) -> tuple[list[Mapping[str, Any]], str]:
        """Every slice of ``service`` and the list's resourceVersion (to watch from)."""
        items: list[Mapping[str, Any]] = []
        params: dict[str, str | int] = {
            "labelSelector": f"{SERVICE_NAME_LABEL}={service}",
            "limit": _LIST_PAGE_SIZE,
        }
        while True:
            response = await self._http().get(
                self._path(namespace), params=params, headers=self._headers()
            )
            if response.status_code >= 400:
                raise _error_from(response.status_code, response.content)
            body = response.json()
            items.extend(body.get("items") or ())
            metadata = body.get("metadata") or {}
            if not metadata.get("continue"):
                return items, str(metadata.get("resourceVersion") or "")
            params = {**params, "continue": str(metadata["continue"])}

    async def watch_endpoint_slices(
        self, namespace: str, service: str, resource_version: str, *, timeout_seconds: int
    ) -> AsyncIterator[WatchEvent]:
        """Changes after ``resource_version`` until the server ends the watch (after about
        ``timeout_seconds``) or the connection drops (an ``httpx.HTTPError``)."""
        params: dict[str, str | int] = {
            "labelSelector": f"{SERVICE_NAME_LABEL}={service}",
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
        }
        # The read timeout outlasts the server's own so a silent half-open connection is
        # noticed, but a quiet, healthy watch (bookmarks come about once a minute) is not cut.
        timeout = httpx.Timeout(self._request_timeout, read=timeout_seconds + 30.0)
        async with self._http().stream(
            "GET", self._path(namespace), params=params, headers=self._headers(), timeout=timeout
        ) as response:
            if response.status_code >= 400:
                raise _error_from(response.status_code, await response.aread())
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise _status_error(obj)
                yield WatchEvent(kind, obj)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _error_from(status: int, body: bytes) -> KubeApiError:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping) and parsed.get("kind") == "Status":
        return _status_error({**parsed, "code": parsed.get("code") or status})
    message = body.decode(errors="replace")[:200]
    if status == 410:
        return ResourceExpired(status, "Gone", message)
    return KubeApiError(status, "", message)


def _status_error(status: Mapping[str, Any]) -> KubeApiError:
    code = int(status.get("code") or 500)
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or "")
    if code == 410 or reason in ("Expired", "Gone"):
        return ResourceExpired(code, reason, message)
    return KubeApiError(code, reason, message)
