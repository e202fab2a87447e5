"""Real grpc.aio replicas for client-side tests (meshcore's client, discovery and balancing).

Each ``Replica`` is a tiny in-process server on 127.0.0.1 with ``grpc.health.v1`` and a generic
echo service answering ``<name>:<request>``, which can be stopped and restarted on the same port
mid-test. The ``replicas`` fixture (tests/conftest.py) starts two, ``r1`` and ``r2``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

__all__ = ["COLLECT", "CREATE", "ECHO", "SERVICE", "SLOW", "Replica", "identity"]

SERVICE = "test.v1.Echo"
ECHO = f"/{SERVICE}/Echo"
CREATE = f"/{SERVICE}/Create"
SLOW = f"/{SERVICE}/Slow"
COLLECT = f"/{SERVICE}/Collect"


def identity(data: bytes) -> bytes:
    return data


@dataclass
class Replica:
    """One echo server; ``calls`` counts what reached it, ``fail_with`` makes it fail."""

    name: str
    port: int = 0
    calls: int = 0
    seen_metadata: list[dict[str, str]] = field(default_factory=list)
    seen_timeouts: list[float | None] = field(default_factory=list)
    fail_with: grpc.StatusCode | None = None
    delay: float = 0.0
    _server: grpc.aio.Server | None = None
    health: health.aio.HealthServicer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _handle(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        self.seen_metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        self.seen_timeouts.append(context.time_remaining())
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            await context.abort(self.fail_with, f"{self.name} fails")
        return self.name.encode() + b":" + request

    async def _collect(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        """Client stream: joins every message it receives."""
        self.calls += 1
        parts = [part async for part in requests]
        if self.fail_with is not None:
            await context.abort(self.fail_with, f"{self.name} fails")
        return self.name.encode() + b":" + b"+".join(parts)

    async def start(self) -> None:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            self._handle, request_deserializer=identity, response_serializer=identity
        )
        collect = grpc.stream_unary_rpc_method_handler(
            self._collect, request_deserializer=identity, response_serializer=identity
        )
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {"Echo": handler, "Create": handler, "Slow": handler, "Collect": collect},
                )
            ]
        )
        self.health = health.aio.HealthServicer()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._server = server

    async def stop(self, grace: float | None = 0.2) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    @property
    def running(self) -> bool:
        return self._server is not None
