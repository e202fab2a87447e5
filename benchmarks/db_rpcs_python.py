"""CreateProject against GetProject in one Python harness (issue 18), for ``db_rpcs.py``.

h2load sends one fixed request; CreateProject needs a new one per call (a new request id, and a
new owner so that no plan limit is ever reached: the bootstrap admin creates each project for a
fresh owner id). Both RPCs are driven by the same client: ``--clients`` processes of real gRPC
clients (uvloop), each with ``--concurrency`` calls in flight, in alternating slices; every reply
is checked. The ratio is CreateProject's rate over GetProject's, median of rounds. The CPU of
Project and of Billing (which CreateProject calls twice) is measured over each slice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyspy
from _common import cpu_seconds, loop_runner

__all__ = ["measure_create_project"]

WARMUP_SECONDS = 0.5


def client(address: str, rpc: str, seconds: float, concurrency: int) -> None:
    """Say "ready" after one checked call, read the window's start from stdin, load until it
    ends, print what was counted inside it as JSON."""
    import grpc
    from zoptal.project.v1 import project_pb2 as pb, project_pb2_grpc

    fixture = json.loads(os.environ["BENCH_FIXTURE"])
    user = (("authorization", f"Bearer {fixture['token']}"),)
    admin = (("authorization", f"Bearer {fixture['admin_token']}"),)
    counter = itertools.count()
    run_id = uuid.uuid4().hex[:8]

    async def get_project(stub: Any) -> None:
        request = pb.GetProjectRequest(project_id=fixture["project_id"])
        reply = await stub.GetProject(request, metadata=user, timeout=10)
        if reply.project.id != fixture["project_id"]:
            raise RuntimeError(f"GetProject returned {reply.project.id!r}")

    async def create_project(stub: Any) -> None:
        number = next(counter)
        owner = f"bench-owner-{run_id}-{number}"
        request = pb.CreateProjectRequest(
            name=f"bench {number}", owner_id=owner, request_id=str(uuid.uuid4())
        )
        reply = await stub.CreateProject(request, metadata=admin, timeout=10)
        if reply.project.owner_id != owner or reply.project.name != request.name:
            raise RuntimeError(f"CreateProject returned {reply.project}")

    call = get_project if rpc == "GetProject" else create_project
    latencies: list[float] = []
    window = [0.0, 0.0]

    async def worker(stub: Any) -> None:
        while time.time() < window[1]:
            began = time.perf_counter()
            await call(stub)
            if window[0] <= time.time() < window[1]:
                latencies.append(time.perf_counter() - began)

    async def main() -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = project_pb2_grpc.ProjectServiceStub(channel)
            await call(stub)
            print("ready", flush=True)
            window[0] = float(await asyncio.to_thread(sys.stdin.readline))
            window[1] = window[0] + seconds
            await asyncio.gather(*(worker(stub) for _ in range(concurrency)))

    with loop_runner() as runner:
        runner.run(main())
    latencies.sort()
    print(json.dumps({"ok": len(latencies), "p99": latencies[int(len(latencies) * 0.99)]}))


def _slice(
    address: str, rpc: str, fixture: Any, pids: dict[str, int], seconds: float, clients: int,
    concurrency: int,
) -> dict[str, float]:  # fmt: skip
    env = {**os.environ, "BENCH_FIXTURE": json.dumps(dataclasses.asdict(fixture))}
    argv = [sys.executable, __file__, address, rpc, str(seconds), str(concurrency)]
    processes = [subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True) for _ in range(clients)]  # fmt: skip
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a {rpc} client failed its first call")
    start_at = time.time() + WARMUP_SECONDS
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(f"{start_at}\n")
        process.stdin.flush()
    time.sleep(max(start_at - time.time(), 0))
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(max(start_at + seconds - time.time(), 0))
    cpu = {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=seconds + 60)
        if process.returncode != 0:
            raise RuntimeError(f"a {rpc} client failed (a reply was wrong or an error)")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    ok = sum(output["ok"] for output in outputs)
    if ok == 0:
        raise RuntimeError(f"no {rpc} reply inside the measurement window")
    figures = {"rps": ok / seconds, "p99_ms": 1000 * max(output["p99"] for output in outputs)}
    figures.update({f"{name}_cpu_us_per_call": 1e6 * used / ok for name, used in cpu.items()})
    return figures


def measure_create_project(
    address: str, fixture: Any, pids: dict[str, int], *, seconds: float, rounds: int,
    clients: int = 2, concurrency: int = 8, profile_seconds: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """CreateProject / GetProject, ``clients`` x ``concurrency`` in flight, alternating slices;
    then, with ``profile_seconds``, py-spy samples Project and Billing during one more
    CreateProject slice."""
    figures: dict[str, list[dict[str, float]]] = {"GetProject": [], "CreateProject": []}
    for number in range(rounds):
        order = list(figures) if number % 2 == 0 else list(reversed(figures))
        for rpc in order:
            figures[rpc].append(_slice(address, rpc, fixture, pids, seconds, clients, concurrency))
    stacks: dict[str, str | None] = {}
    if profile_seconds > 0:
        with concurrent.futures.ThreadPoolExecutor(1 + len(pids)) as pool:
            load = pool.submit(_slice, address, "CreateProject", fixture, pids,
                               profile_seconds + 2, clients, concurrency)  # fmt: skip
            time.sleep(WARMUP_SECONDS + 1)
            # Every measured process at once: a create's CPU is split between them.
            sampled = {name: pool.submit(pyspy.record, pid, profile_seconds)
                       for name, pid in pids.items()}  # fmt: skip
            stacks = {name: future.result() for name, future in sampled.items()}
            load.result()
    ratios = [c["rps"] / g["rps"] for c, g in
              zip(figures["CreateProject"], figures["GetProject"], strict=True)]  # fmt: skip
    result: dict[str, Any] = {"ratio": statistics.median(ratios), "round_ratios": ratios,
                              "in_flight": clients * concurrency}  # fmt: skip
    for rpc, slices in figures.items():
        for key in slices[0]:
            result[f"{rpc}_{key}"] = statistics.median(s[key] for s in slices)
    if stacks.get("project"):
        result["profile"] = pyspy.by_package(stacks["project"])
    if stacks.get("billing"):
        result["billing_profile"] = pyspy.by_package(stacks["billing"])
    result["stacks"] = {name: text for name, text in stacks.items() if text}
    print(f"CreateProject / GetProject (Python harness, {clients}x{concurrency} in flight): "
          f"{result['CreateProject_rps']:.0f} vs {result['GetProject_rps']:.0f} calls/s, "
          f"ratio {result['ratio']:.2f}; Project CPU "
          f"{result['CreateProject_project_cpu_us_per_call']:.0f} us/create",
          flush=True)  # fmt: skip
    return result


if __name__ == "__main__":
    client(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
