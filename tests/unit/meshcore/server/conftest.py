"""A tiny generic gRPC service (no generated code) for exercising the server runtime."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from meshcore.server import ServiceRegistration

ECHO_SERVICE = "meshtest.Echo"


class EchoServicer:
    """``Echo`` returns its request; ``Hold`` answers once ``release`` is set."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def echo(self, request: bytes, context: Any) -> bytes:
        return request

    async def hold(self, request: bytes, context: Any) -> bytes:
        self.started.set()
        await self.release.wait()
        return b"released"


def add_echo_to_server(servicer: EchoServicer, server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(servicer.echo),
            "Hold": grpc.unary_unary_rpc_method_handler(servicer.hold),
        },
    )
    server.add_generic_rpc_handlers((handler,))


def echo_registration(servicer: EchoServicer | None = None) -> ServiceRegistration:
    return ServiceRegistration(servicer or EchoServicer(), add_echo_to_server, ECHO_SERVICE)


@pytest.fixture
def echo() -> EchoServicer:
    return EchoServicer()


@pytest.fixture
def echo_service(echo: EchoServicer) -> ServiceRegistration:
    """The echo servicer, registered under ``meshtest.Echo``."""
    return echo_registration(echo)
