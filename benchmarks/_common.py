"""Helpers shared by ``run_all.py`` and its platform measurements: the machine, processes, ports.

Linux only (``/proc``), like the benchmarks that read server CPU time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import socket
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def loop_runner() -> asyncio.Runner:
    """An asyncio runner on uvloop when installed (as every service runs)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


# -- the machine ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What a reader needs to compare two runs: CPU, cores, versions, load and the date."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "grpcio": _version("grpcio"),
        "protobuf": _version("protobuf"),
        "uvloop": _version("uvloop"),
        "kernel": platform.release(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) clock ticks of all CPUs since boot, from /proc/stat; None elsewhere.

    Steal is time the hypervisor gave this virtual machine's CPUs to someone else: on a shared
    host it is the noise no load average shows."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        first_line = Path("/proc/stat").read_text().split("\n", 1)[0]  # "cpu  <ticks> ..."
        fields = [int(value) for value in first_line.split()[1:]]
        return fields[7], sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return None


def steal_share(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """The share of CPU time stolen between two ``cpu_times()`` readings."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


# -- processes --------------------------------------------------------------------------------


def memory_kib(pid: int) -> dict[str, int]:
    """Resident set size now (``VmRSS``) and at its peak (``VmHWM``), in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return {"rss_kib": found.get("VmRSS", 0), "peak_kib": found.get("VmHWM", 0)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def package_of(filename: str) -> str:
    """The top-level package a profiled frame's source file belongs to (``stdlib`` for the
    standard library, ``builtins / C calls`` for frames without a file)."""
    if filename.startswith("<") or filename == "~":
        return "builtins / C calls"
    if "/" not in filename or not filename.isprintable():
        # py-spy --nonblocking reads stacks while they change: now and then a torn name.
        return "unreadable"
    parts = filename.replace("\\", "/").split("/")
    for marker in ("site-packages", "src", "lib"):
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            if index + 1 < len(parts):
                name = parts[index + 1]
                if name.startswith("python3"):
                    return "stdlib"
                return name.removesuffix(".py")
    return "stdlib" if "python3" in filename else parts[-1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list, as the kernel keeps them per thread)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return sorted(set(found))


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


# -- ports ------------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_offset(base_ports: list[int], *, low: int = 20_000, high: int = 50_000) -> int:
    """An offset that frees every one of ``base_ports`` (others may run a platform too)."""
    for _ in range(200):
        offset = random.randrange(low, high, 7)
        if all(port_is_free(port + offset) for port in base_ports):
            return offset
    raise RuntimeError("no free port offset found for the platform")


async def wait_serving(address: str, deadline_seconds: float = 60.0, service: str = "") -> None:
    """Poll grpc.health.v1 Check until SERVING or the deadline (then raise)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    started = time.monotonic()
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - started < deadline_seconds:
            with contextlib.suppress(grpc.aio.AioRpcError):
                request = health_pb2.HealthCheckRequest(service=service)
                reply = await health.Check(request, timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{address} did not become SERVING within {deadline_seconds:g} s")
