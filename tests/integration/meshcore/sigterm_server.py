"""A real meshcore server process for the shutdown tests (run as a script, not collected).

It prints what happens on stdout, one event per line: ``port N`` once serving, then
``sleep-started`` / ``sleep-finished`` around each ``Sleep`` call and ``hook:<name>`` for each
shutdown hook, so the test can check the order of the shutdown sequence.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from meshcore.server import MeshServer, ServiceRegistration, run
from meshcore.settings import ServiceSettings


def say(line: str) -> None:
    print(line, flush=True)


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def sleep(request: bytes, context: Any) -> bytes:
    say("sleep-started")
    await asyncio.sleep(float(request.decode()))
    say("sleep-finished")
    return b"slept"


def add(servicer: object, server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        "meshtest.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        },
    )
    server.add_generic_rpc_handlers((handler,))


async def main() -> None:
    settings = ServiceSettings.from_env()
    server = MeshServer(
        settings,
        [ServiceRegistration(None, add, "meshtest.Echo")],
        on_shutdown=[lambda: say("hook:database"), lambda: say("hook:redis")],
    )
    await server.start()
    say(f"port {server.port}")
    await server.serve()


if __name__ == "__main__":
    raise SystemExit(run(main()))
