"""Cold start, memory per service and the cost of a second hop, on the embedded platform.

One run, one machine, three measurements:

1. **Cold start.** ``python -m zoptal_platform run`` with a fresh temporary ``ZOPTAL_DATA_DIR``
   (then once more on the same folder: the everyday start, data migrated, keys and identities
   made)
   and a free ``ZOPTAL_PORT_OFFSET``, timed from spawn to its "is SERVING" banner (migrations,
   key generation, five services and the Celery worker all included), against the start of a
   bare ``grpc.aio`` server process (spawn to "started", health service included). The two
   alternate over ``--start-rounds`` rounds; the figure is the median of per-round ratios.
2. **Memory.** The resident set (``VmRSS``) of every process the launcher started, idle
   (a few seconds after the banner) and after ``--load-seconds`` of calls to all five services
   at once (with the peak, ``VmHWM``). Every reply is checked; a failure aborts the run.
3. **Two hops against one.** Billing's CheckSubscriptionLimits called directly by a user (one
   hop) against the same check reached through Project (two hops): a relay process built from
   Project's own settings, server interceptor chain and Billing gateway (typed client, service
   token, deadline) whose one method asks Billing for the caller's project limit. Latency with
   one call at a time (the cost of the hop itself) and throughput with 16 in flight, in short
   alternating slices over ``--hop-rounds`` rounds; medians of per-round ratios.

    uv run python benchmarks/platform_footprint.py [--start-rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOT,
    children,
    command_line,
    free_port_offset,
    loop_runner,
    memory_kib,
)
from platform_load import drive_hops, drive_load, prepare_user, wait_for_sent_email

BANNER = "Zoptal mesh is SERVING"
# Every port the launcher opens, before the offset: gRPC, metrics, JWKS HTTP, SMTP sink.
BASE_PORTS = [4000, 4001, 4003, 4004, 4005, 9400, 9401, 9403, 9404, 9405, 8080, 1025]
# Variables that would point the platform's services at someone else's stores or ports.
FOREIGN_VARIABLES = ("DATABASE_URL", "REDIS_URL", "GRPC_PORT", "METRICS_PORT", "CELERY_BROKER_URL")


# -- the bare baseline process ------------------------------------------------------------------


def serve_bare() -> None:
    """A bare grpc.aio server with grpc.health.v1, as small as a server can be."""
    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    async def main() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print("started", flush=True)
        await server.wait_for_termination()

    with loop_runner() as runner:
        runner.run(main())


def bare_start_seconds() -> float:
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "started":
            raise RuntimeError("the bare server did not start")
        return time.perf_counter() - began
    finally:
        process.terminate()
        process.wait(timeout=15)


# -- the platform ---------------------------------------------------------------------------------


class Platform:
    """``python -m zoptal_platform run`` in a temporary data folder on free ports."""

    def __init__(self, data_dir: Path, extra_env: Mapping[str, str] | None = None) -> None:
        """``extra_env``: more variables for the launcher and every service (PostgreSQL and
        Redis through ``ZOPTAL_POSTGRES_URL`` and ``ZOPTAL_REDIS_URL``, cheaper hashing...)."""
        self.data_dir = data_dir
        self.offset = free_port_offset(BASE_PORTS)
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        env.update(
            ZOPTAL_DATA_DIR=str(data_dir),
            ZOPTAL_PORT_OFFSET=str(self.offset),
            # The load phases must measure serving, not the per-caller limit (1000 a minute).
            RATE_LIMIT_MAX_REQUESTS="1000000000",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env or {})
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def address(self, port: int) -> str:
        return f"127.0.0.1:{port + self.offset}"

    def start(self, timeout: float = 180.0) -> float:
        """Spawn the launcher; seconds until its banner (raises with its output if none)."""
        began = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "zoptal_platform", "run"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen = threading.Event()

        def read() -> None:
            assert self.process is not None
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line.rstrip())
                if BANNER in line:
                    seen.set()

        threading.Thread(target=read, daemon=True).start()
        while not seen.wait(0.05):
            if self.process.poll() is not None or time.perf_counter() - began > timeout:
                tail = "\n".join(self.output[-30:])
                raise RuntimeError(f"the platform did not reach SERVING:\n{tail}")
        return time.perf_counter() - began

    def processes(self) -> dict[str, list[int]]:
        """Service label -> its process and, for the Celery worker, its pool children."""
        assert self.process is not None
        found: dict[str, list[int]] = {}
        for pid in children(self.process.pid):
            argv = command_line(pid)
            if "celery" in " ".join(argv):
                found["notification-worker"] = [pid, *children(pid)]
            elif "-m" in argv:
                module = argv[argv.index("-m") + 1]
                found[module.removeprefix("zoptal_")] = [pid]
        return found

    def memory(self) -> dict[str, dict[str, int]]:
        report = {}
        for label, pids in self.processes().items():
            samples = [memory_kib(pid) for pid in pids]
            report[label] = {
                "processes": len(pids),
                "rss_kib": sum(sample["rss_kib"] for sample in samples),
                "peak_kib": sum(sample["peak_kib"] for sample in samples),
            }
        return report

    def stop(self) -> None:
        """SIGTERM the launcher (it drains and stops every service); SIGKILL what outlives it."""
        if self.process is None or self.process.poll() is not None:
            return
        started = [pid for pids in self.processes().values() for pid in pids]
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in started:  # our own descendants, only if the launcher failed to stop them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- orchestration ---------------------------------------------------------------------------------


def run(options: argparse.Namespace) -> dict[str, Any]:
    bare_times: list[float] = []
    platform_times: list[float] = []
    second_times: list[float] = []
    result: dict[str, Any] = {}
    for number in range(1, options.start_rounds + 1):
        last = number == options.start_rounds
        bare_times.append(bare_start_seconds())
        with tempfile.TemporaryDirectory(prefix="bench-platform-") as folder:
            platform = Platform(Path(folder))
            try:
                platform_times.append(platform.start())
            finally:
                platform.stop()
            # The everyday start: the same data folder, migrated, keys and identities made.
            platform = Platform(Path(folder))
            try:
                second_times.append(platform.start())
                print(
                    f"start round {number}: bare {bare_times[-1]:.2f} s, platform "
                    f"{platform_times[-1]:.2f} s (fresh), {second_times[-1]:.2f} s (again)",
                    flush=True,
                )
                if last:
                    result.update(_measure_running(platform, options))
            finally:
                platform.stop()
    ratios = [p / b for p, b in zip(platform_times, bare_times, strict=True)]
    result["cold_start"] = {
        "ratio": statistics.median(ratios),
        "platform_seconds": statistics.median(platform_times),
        "bare_seconds": statistics.median(bare_times),
        "round_ratios": ratios,
        "second_start_seconds": statistics.median(second_times),
        "second_start_rounds": second_times,
    }
    return result


def _measure_running(platform: Platform, options: argparse.Namespace) -> dict[str, Any]:
    time.sleep(options.settle_seconds)  # let start-up garbage settle before "idle"
    idle = platform.memory()
    with loop_runner() as runner:
        user = runner.run(prepare_user(platform.address))
        # Another user reaches the free plan's limit: the notice email gives the Celery worker
        # a delivery to make, so its loaded figure includes its database pool and providers.
        noticed = runner.run(prepare_user(platform.address, projects=3))
        calls = runner.run(drive_load(platform.address, user, options.load_seconds))
        runner.run(wait_for_sent_email(platform.address, noticed, seconds=60))
    loaded = platform.memory()
    print(f"load: {json.dumps(calls)}", flush=True)
    relay = _start_relay(platform)
    try:
        with loop_runner() as runner:
            rounds, seconds = options.hop_rounds, options.hop_seconds
            hops = runner.run(drive_hops(platform.address, relay[1], user, rounds, seconds))
    finally:
        relay[0].terminate()
        relay[0].wait(timeout=15)
    memory = {label: {"idle": idle[label], "loaded": loaded.get(label, {})} for label in idle}
    return {"memory": memory, "load_calls": calls, "hops": hops}


def _start_relay(platform: Platform) -> tuple[subprocess.Popen[str], str]:
    env = {
        **platform.env,
        "DATA_DIR": str(platform.data_dir / "relay"),
        "METRICS_PORT": "0",
        "AUTH_ADDR": platform.address(4000),
        "BILLING_ADDR": platform.address(4003),
        "ANALYTICS_ADDR": platform.address(4005),
        "AUTH_JWKS_URL": f"http://{platform.address(8080)}/.well-known/jwks.json",
        # Project's own credential: the relay is Project, a second replica of it.
        "SERVICE_CREDENTIALS_FILE": str(
            platform.data_dir / "identities" / "project" / "credentials.json"
        ),
    }
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("hop_relay.py"))],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"the Project relay did not start: {line!r}")
    return process, f"127.0.0.1:{line.split()[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-rounds", type=int, default=2)
    parser.add_argument("--settle-seconds", type=float, default=3.0)
    parser.add_argument("--load-seconds", type=float, default=8.0)
    parser.add_argument("--hop-rounds", type=int, default=6)
    parser.add_argument("--hop-seconds", type=float, default=1.0)
    parser.add_argument("--json", help="also write the result as JSON to this file")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_bare:
        serve_bare()
        return 0
    result = run(options)
    print(json.dumps(result, indent=2))
    if options.json:
        Path(options.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
