"""A real server process on SIGTERM/SIGINT: NOT_SERVING first, in-flight calls finish, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

SCRIPT = Path(__file__).with_name("sigterm_server.py")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def start_server(tmp_path: Path, **env: str) -> asyncio.subprocess.Process:
    environment = {
        **os.environ,
        "GRPC_PORT": "0",
        "METRICS_PORT": "0",
        "DATA_DIR": str(tmp_path),
        "SHUTDOWN_DRAIN_SECONDS": "1.0",
        "SHUTDOWN_GRACE_SECONDS": "10",
        **env,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )


async def next_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    return line.decode().strip()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_drains_then_finishes_in_flight_calls_then_exits_zero(
    sig: signal.Signals, tmp_path: Path
) -> None:
    """Health flips first, a slow call in flight completes OK, hooks run last, exit code 0."""
    process = await start_server(tmp_path)
    try:
        first = await next_line(process)
        assert first.startswith("port "), first
        address = f"127.0.0.1:{first.split()[1]}"
        async with grpc.aio.insecure_channel(address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            assert (await watch.read()).status == SERVING
            slow = asyncio.ensure_future(channel.unary_unary("/meshtest.Echo/Sleep")(b"2.5"))
            assert await next_line(process) == "sleep-started"

            process.send_signal(sig)
            assert (await asyncio.wait_for(watch.read(), timeout=10)).status == NOT_SERVING
            assert not slow.done()
            # Still draining: load balancers may send a last call, and it is answered.
            assert await channel.unary_unary("/meshtest.Echo/Echo")(b"late", timeout=5) == b"late"

            assert await asyncio.wait_for(slow, timeout=20) == b"slept"
        exit_code = await asyncio.wait_for(process.wait(), timeout=20)
        rest = [await next_line(process) for _ in range(3)]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert exit_code == 0
    assert rest == ["sleep-finished", "hook:redis", "hook:database"]


async def test_a_taken_port_exits_non_zero_with_a_clear_message(tmp_path: Path) -> None:
    """A second server on a busy port fails at start instead of sharing the port."""
    first = await start_server(tmp_path)
    try:
        port = (await next_line(first)).split()[1]
        second = await start_server(tmp_path, GRPC_PORT=port)
        _, stderr = await asyncio.wait_for(second.communicate(), timeout=30)
        assert second.returncode == 2
        assert f"cannot bind gRPC 127.0.0.1:{port}" in stderr.decode()
    finally:
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), timeout=20) == 0


async def test_bad_settings_exit_non_zero_naming_the_variable(tmp_path: Path) -> None:
    """A production start with the development secret never binds, and says why."""
    process = await start_server(
        tmp_path,
        ZOPTAL_ENV="production",
        DATABASE_URL="postgresql+asyncpg://app@db/app",
        JWT_SECRET="changeme",
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert "JWT_SECRET:" in stderr.decode()
    assert "changeme" not in stderr.decode()
