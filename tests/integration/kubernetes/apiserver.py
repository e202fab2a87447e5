"""A tiny Kubernetes API server for EndpointSlices, over real HTTP/1.1 sockets.

It keeps what the real one keeps for this purpose: objects with a global resourceVersion, an
event history that watches replay from the version they ask for, compaction (a watch from a
version older than the compaction point gets an ``ERROR`` event with a 410 Status, as
kube-apiserver sends "too old resource version"), bookmarks, label-selector filtering, bearer
token checks, and chunked watch streams that can be cut mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/apis/discovery.k8s.io/v1/namespaces/"


@dataclass(eq=False)
class Watcher:
    namespace: str
    service: str
    bookmarks: bool
    writer: asyncio.StreamWriter
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeApiServer:
    """EndpointSlices in namespaces, list + watch, on ``127.0.0.1:<free port>``."""

    def __init__(self, token: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.token = token
        self.resource_version = 1
        self.compacted_at = 0
        self.requests: list[Request] = []
        self._ssl = ssl_context
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._history: list[tuple[int, str, dict[str, Any]]] = []
        self._watchers: set[Watcher] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.drop_watches()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- what a test does -----------------------------------------------------------------

    def upsert(self, endpoint_slice: dict[str, Any]) -> None:
        metadata = endpoint_slice["metadata"]
        key = (metadata["namespace"], metadata["name"])
        self._record("MODIFIED" if key in self._objects else "ADDED", endpoint_slice)

    def delete(self, namespace: str, name: str) -> None:
        self._record("DELETED", self._objects[(namespace, name)])

    def bookmark(self) -> None:
        """Tell every watcher that asked for bookmarks how far the store has got."""
        for watcher in self._watchers:
            if watcher.bookmarks:
                watcher.queue.put_nowait(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": "EndpointSlice",
                            "apiVersion": "discovery.k8s.io/v1",
                            "metadata": {"resourceVersion": str(self.resource_version)},
                        },
                    }
                )

    def compact(self) -> None:
        """Forget history up to now: older resourceVersions become 410 Gone."""
        self.compacted_at = self.resource_version
        self._history.clear()

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream (no terminating chunk)."""
        for watcher in list(self._watchers):
            watcher.writer.transport.abort()
        self._watchers.clear()

    @property
    def watch_count(self) -> int:
        return len(self._watchers)

    def _record(self, kind: str, endpoint_slice: dict[str, Any]) -> None:
        self.resource_version += 1
        stored = copy.deepcopy(endpoint_slice)
        stored["metadata"]["resourceVersion"] = str(self.resource_version)
        key = (stored["metadata"]["namespace"], stored["metadata"]["name"])
        if kind == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = stored
        self._history.append((self.resource_version, kind, stored))
        for watcher in self._watchers:
            if self._matches(watcher.namespace, watcher.service, stored):
                watcher.queue.put_nowait({"type": kind, "object": stored})

    @staticmethod
    def _matches(namespace: str, service: str, obj: dict[str, Any]) -> bool:
        metadata = obj["metadata"]
        label = metadata.get("labels", {}).get("kubernetes.io/service-name")
        return bool(metadata["namespace"] == namespace and label == service)

    # -- HTTP -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append(Request(method, url.path, params, headers))
        try:
            await self._answer(url.path, params, headers, writer)
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(
        self,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        writer: asyncio.StreamWriter,
    ) -> None:
        if headers.get("authorization") != f"Bearer {self.token}":
            await self._send_json(writer, 401, _status(401, "Unauthorized", "bad token"))
            return
        if not path.startswith(PREFIX) or not path.endswith("/endpointslices"):
            await self._send_json(writer, 404, _status(404, "NotFound", path))
            return
        namespace = path[len(PREFIX) :].split("/", 1)[0]
        selector = params.get("labelSelector", "")
        service = selector.partition("kubernetes.io/service-name=")[2]
        if params.get("watch") != "true":
            items = [o for o in self._objects.values() if self._matches(namespace, service, o)]
            body = {
                "kind": "EndpointSliceList",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"resourceVersion": str(self.resource_version)},
                "items": items,
            }
            await self._send_json(writer, 200, body)
            return
        await self._watch(namespace, service, params, writer)

    async def _watch(
        self, namespace: str, service: str, params: dict[str, str], writer: asyncio.StreamWriter
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        since = int(params.get("resourceVersion") or 0)
        if since < self.compacted_at:
            gone = _status(
                410, "Expired", f"too old resource version: {since} ({self.compacted_at})"
            )
            await self._send_chunk(writer, {"type": "ERROR", "object": gone})
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return
        watcher = Watcher(namespace, service, params.get("allowWatchBookmarks") == "true", writer)
        for version, kind, obj in self._history:
            if version > since and self._matches(namespace, service, obj):
                watcher.queue.put_nowait({"type": kind, "object": obj})
        self._watchers.add(watcher)
        try:
            while True:
                await self._send_chunk(writer, await watcher.queue.get())
        finally:
            self._watchers.discard(watcher)

    @staticmethod
    async def _send_chunk(writer: asyncio.StreamWriter, event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    @staticmethod
    async def _send_json(writer: asyncio.StreamWriter, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}[code]
        writer.write(
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
