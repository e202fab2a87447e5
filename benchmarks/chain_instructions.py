"""The interceptor chain's cost in CPU instructions per call, against bare grpc.aio: noise-free.

``interceptor_chain.py`` measures what the issue's goals are written in, throughput and p99, and
on a shared two-core virtual machine those swing by a tenth from one round to the next. This
script measures the same two servers (its ``--serve`` variants: the same handler, the same
chain) under valgrind's callgrind, which counts the instructions the server process executes
instead of timing it. The count does not depend on what else the host is doing: two runs of one
variant agree within about half a percent, so a change of the chain shows up here even when the
timed benchmarks cannot tell it from noise.

For each variant in turn: start its server under callgrind, warm it up, zero the counters
(``callgrind_control -z``), send ``--calls`` calls with ``--concurrency`` in flight, dump the
counters (``callgrind_control -d``), stop it. Instructions per call = the dump's total over the
calls (the server's every thread: grpc's poller included).

What it cannot see: time spent waiting for memory and caches. Under load the chain's extra
instructions run slower per instruction than grpc's own (its server's CPU time per call grew by
about 1.3 times for 1.23 times the instructions, in the runs of docs/benchmarks.md), so this
ratio is the floor of the chain's CPU cost, not the whole of it.

    uv run python benchmarks/chain_instructions.py [--calls 2000] [--concurrency 8]

Needs valgrind (``valgrind`` and ``callgrind_control`` on PATH). Every reply is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import interceptor_chain as served  # the servers being compared, and how to call them

VARIANTS = ("bare", "chain")
_START_TIMEOUT_SECONDS = 180.0  # a server starts about 30 times slower under callgrind


def _start_under_callgrind(variant: str, directory: str) -> tuple[subprocess.Popen[bytes], str]:
    port_file = os.path.join(directory, f"{variant}.port")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--dump-instr=no",
        f"--callgrind-out-file={directory}/callgrind.{variant}.%p",
        sys.executable,
        served.__file__,
        "--serve",
        variant,
        "--port-file",
        port_file,
    ]
    process = subprocess.Popen(
        command,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while not os.path.exists(port_file) or not Path(port_file).read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"{variant} server did not start under callgrind")
        time.sleep(0.2)
    return process, f"127.0.0.1:{Path(port_file).read_text()}"


async def _drive(address: str, calls: int, concurrency: int, pid: int) -> None:
    import grpc.aio

    metadata = (("authorization", f"Bearer {served._token()}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        ping = channel.unary_unary(
            served.METHOD,
            request_serializer=served._identity,
            response_deserializer=served._identity,
        )

        async def burst(per_worker: int) -> None:
            async def worker(index: int) -> None:
                payload = f"p{index}".encode()
                for _ in range(per_worker):
                    reply = await ping(payload, metadata=metadata, timeout=60)
                    if reply != b"pong:" + payload:
                        raise AssertionError(f"unexpected reply {reply!r}")

            await asyncio.gather(*(worker(i) for i in range(concurrency)))

        await burst(max(1, 200 // concurrency))  # warm up: connection, caches, specialisation
        _callgrind_control("-z", pid)
        await burst(calls // concurrency)
        _callgrind_control("-d", pid)


def _callgrind_control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def _instructions(directory: str, variant: str, pid: int) -> int:
    """The total of the dump taken after the measured calls (part 1 of the process's output)."""
    dump = Path(directory) / f"callgrind.{variant}.{pid}.1"
    for line in dump.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {dump}")


def measure(variant: str, calls: int, concurrency: int) -> float:
    """Instructions per call of ``variant``'s server process."""
    with tempfile.TemporaryDirectory() as directory:
        process, address = _start_under_callgrind(variant, directory)
        try:
            asyncio.run(_drive(address, calls, concurrency, process.pid))
            measured = (calls // concurrency) * concurrency
            return _instructions(directory, variant, process.pid) / measured
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
            if process.poll() is None:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated, bare and chain included; also interceptor_chain.py's diagnostic "
        "ones (passthrough: grpc's interceptor hook alone; noop: meshcore's base alone)",
    )
    parser.add_argument("--json", help="also write the result as JSON to this file")
    args = parser.parse_args()
    variants = tuple(args.variants.split(","))
    if not {"bare", "chain"} <= set(variants):
        parser.error("--variants must include bare and chain")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    # One after the other, never side by side: how many calls share one wake-up of the event
    # loop depends on timing, and two servers under callgrind at once would slow each other.
    per_call = {variant: measure(variant, args.calls, args.concurrency) for variant in variants}
    result: dict[str, Any] = {
        "instructions_per_call": per_call,
        "ratio": per_call["chain"] / per_call["bare"],
        "calls": args.calls,
        "concurrency": args.concurrency,
    }
    print(json.dumps(result, indent=2))
    if args.json:  # for benchmarks/run_all.py
        Path(args.json).write_text(json.dumps(result))
    for variant, count in per_call.items():
        share = count / per_call["bare"]
        print(f"{variant:>12}: {count:,.0f} instructions per call, {share:.3f} of bare")


if __name__ == "__main__":
    main()
