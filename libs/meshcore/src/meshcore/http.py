"""A tiny asyncio HTTP/1.1 server for the few plain-HTTP endpoints a gRPC service exposes.

Prometheus scrapes ``/metrics`` on ``METRICS_PORT``; Auth serves ``/.well-known/jwks.json``. Both
are small GET endpoints, so a dependency-free server on the service's own event loop is enough:
no extra thread, nothing started at import time, and it stops with the gRPC server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["HttpResponse", "HttpServer", "Route", "metrics_routes"]

logger = logging.getLogger(__name__)

_MAX_HEADER_BYTES = 16 * 1024
_READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class HttpResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Route = Callable[[], Awaitable[HttpResponse] | HttpResponse]
"""A GET handler: returns the response (sync or async)."""

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class HttpServer:
    """Serves GET (and HEAD) for a fixed set of paths."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Route]) -> None:
        self.host = host
        self.port = port
        self.routes = dict(routes)
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Bind and serve; return the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEADER_BYTES:
                return
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            response = await self._respond(method, path)
            reason = _REASONS.get(response.status, "OK")
            headers = {
                "Content-Type": response.content_type,
                "Content-Length": str(len(response.body)),
                "Connection": "close",
                **response.headers,
            }
            lines = [f"HTTP/1.1 {response.status} {reason}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if method != "HEAD":
                writer.write(response.body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that hangs up or stalls gets nothing; nothing to log
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, method: str, path: str) -> HttpResponse:
        route = self.routes.get(path)
        if route is None:
            return HttpResponse(404, b"not found\n")
        if method not in ("GET", "HEAD"):
            return HttpResponse(405, b"method not allowed\n", headers={"Allow": "GET, HEAD"})
        try:
            result = route()
            if isinstance(result, Awaitable):
                result = await result
            return result
        except Exception:
            logger.exception("http handler for %s failed", path)
            return HttpResponse(500, b"internal error\n")


def metrics_routes(registry: object | None = None) -> dict[str, Route]:
    """``/metrics`` in the Prometheus text format for ``registry`` (default: the global one)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    chosen = registry if isinstance(registry, CollectorRegistry) else REGISTRY

    def metrics() -> HttpResponse:
        return HttpResponse(200, generate_latest(chosen), CONTENT_TYPE_LATEST)

    return {"/metrics": metrics}
