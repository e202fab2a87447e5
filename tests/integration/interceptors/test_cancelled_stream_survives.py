"""A client cancelling a server stream must never crash the server process.

grpc's Cython layer segfaults when a finished streaming call is asked for its peer; the logging
observer used to do exactly that at DEBUG level. The scenario runs in a child process, because a
segfault would take the test runner down with it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCENARIO = textwrap.dedent(
    """
    import asyncio, faulthandler, logging
    faulthandler.enable()
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from meshcore.interceptors.chain import build_server_chain
    from meshcore.server import MeshServer
    from meshcore.settings import ServiceSettings

    logging.basicConfig(level=logging.DEBUG)  # every finished call is logged, peer included

    async def main():
        settings = ServiceSettings(grpc_port=0, metrics_port=0)
        for _ in range(25):
            server = MeshServer(settings, [], interceptors=build_server_chain(settings))
            await server.start()
            channel = grpc.aio.insecure_channel(server.address)
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            await watch.read()
            watch.cancel()
            await channel.close()
            await server.stop()
        print("survived")

    asyncio.run(main())
    """
)


def test_cancelled_watch_then_stop_does_not_crash_the_server() -> None:
    """Cancel a Watch stream and stop the server at once, many times over, with DEBUG logs."""
    result = subprocess.run(
        [sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "survived" in result.stdout
