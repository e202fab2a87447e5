"""Database-backed RPCs of the platform on PostgreSQL + Redis against a bare grpc.aio echo server.

One run, one machine (issue 18). The embedded platform (``python -m zoptal_platform run``, every
service its own process) runs on PostgreSQL and Redis (``ZOPTAL_POSTGRES_URL``,
``ZOPTAL_REDIS_URL``; databases under a fresh prefix, dropped afterwards); the bare server is a
``grpc.aio`` server on uvloop answering every method by echoing the request. For each entry of
``db_rpc_entries.ENTRIES``:

1. a real gRPC client calls the RPC and checks the reply;
2. h2load (16 connections x 8 streams) drives the service and the bare server with the same
   request, in alternating order over ``--rounds`` rounds, each phase about ``--seconds`` long;
   the service's own per-status counters (Prometheus ``grpc_server_handled_total``) must show
   every call of the phase as OK, since h2load counts gRPC errors as successes; the CPU time of
   the serving process over the phase gives its CPU per call;
3. p99 latency at a constant load of half the bare server's measured capacity, service against
   bare (skipped, and reported as such, when the service cannot carry that load at all);
4. py-spy samples the serving process during one more h2load phase (``--profile-seconds``);
5. the real client checks a reply again.

Then the Python harness (``db_rpcs_python.py``) measures CreateProject, a new request id and
owner per call, against GetProject in the same harness.

Ratios are medians of per-round ratios: both sides of a round run back to back, so background
load (other people's tests on a shared machine) hits both alike. Absolute rates are not.

    uv run python benchmarks/db_rpcs.py [--rounds 3] [--seconds 2] [--only GetProject]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import h2load
import pyspy
from _common import cpu_seconds, loop_runner
from db_rpc_entries import ENTRIES, SERVICE_PORTS, DbRpc, Fixture
from db_rpcs_python import measure_create_project
from platform_footprint import Platform

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/9"
PASSWORD = "benchmark passphrase 42"  # noqa: S105 - throwaway accounts in throwaway databases
ADMIN_EMAIL = "bench-admin@example.com"


# -- the bare server ------------------------------------------------------------------------------


def serve_bare() -> None:
    """Echo every unary call's request bytes back: gRPC with no work and no meshcore."""
    import grpc

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    class Echo(grpc.GenericRpcHandler):
        def service(self, details: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(echo)

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((Echo(),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(f"READY {port}", flush=True)
        await server.wait_for_termination()

    with loop_runner() as runner:
        runner.run(main())


# -- the platform ---------------------------------------------------------------------------------


def platform_env(prefix: str) -> dict[str, str]:
    return {
        "ZOPTAL_POSTGRES_URL": POSTGRES,
        "ZOPTAL_DATABASE_PREFIX": prefix,
        "ZOPTAL_REDIS_URL": REDIS,
        # Cheap hashing only speeds up the setup logins; no measured RPC hashes a password.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "8192",
        "ARGON2_PARALLELISM": "1",
        "ACCESS_TOKEN_TTL_SECONDS": "3600",
        "AUTH_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
        "AUTH_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
    }


async def _drop_databases(prefix: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        names = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{prefix}%"
        )
        for row in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await connection.close()


async def prepare(platform: Platform) -> Fixture:
    """A registered user with one project, and the bootstrap admin, through the real RPCs."""
    import grpc
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
    from zoptal.project.v1 import project_pb2, project_pb2_grpc

    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    async with grpc.aio.insecure_channel(platform.address(4000)) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        await auth.RegisterUser(
            auth_pb2.RegisterUserRequest(email=email, password=PASSWORD), timeout=30
        )
        login = await auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=30)
        admin = await auth.Login(
            auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=PASSWORD), timeout=30
        )
    metadata = (("authorization", f"Bearer {login.access_token}"),)
    async with grpc.aio.insecure_channel(platform.address(4001)) as channel:
        projects = project_pb2_grpc.ProjectServiceStub(channel)
        created = await projects.CreateProject(
            project_pb2.CreateProjectRequest(name="bench"), metadata=metadata, timeout=30
        )
    return Fixture(login.user.id, login.access_token, created.project.id, admin.access_token)


# -- checks ---------------------------------------------------------------------------------------


async def check_reply(address: str, rpc: DbRpc, fixture: Fixture) -> None:
    """One call through a real gRPC client; raise unless its status is OK and the reply right."""
    import grpc

    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(
            rpc.method,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=rpc.reply.FromString,
        )
        reply = await call(
            rpc.request(fixture), metadata=tuple(rpc.metadata(fixture).items()), timeout=10
        )
    problem = rpc.check(fixture, reply)
    if problem is not None:
        raise RuntimeError(f"{rpc.label}: wrong reply: {problem}")


def handled(metrics_address: str, method: str) -> dict[str, float]:
    """The service's own count of finished calls of ``method``, by gRPC status code."""
    from prometheus_client.parser import text_string_to_metric_families

    service, name = method.strip("/").split("/")
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "grpc_server_handled":
            continue
        for sample in family.samples:
            labels = sample.labels
            ours = labels.get("grpc_service") == service and labels.get("grpc_method") == name
            if ours and sample.name.endswith("_total"):
                counts[labels["grpc_code"]] = sample.value
    return counts


# -- one RPC --------------------------------------------------------------------------------------


class Target:
    """One server under h2load: where it listens, which process serves, its status counters."""

    def __init__(self, address: str, pid: int, metrics: str | None) -> None:
        self.address, self.pid, self.metrics = address, pid, metrics

    def phase(self, rpc: DbRpc, fixture: Fixture, calls: int, **kw: Any) -> dict[str, float]:
        body = h2load.grpc_frame(rpc.request(fixture).SerializeToString())
        url = f"http://{self.address}{rpc.method}"
        before = handled(self.metrics, rpc.method) if self.metrics else {}
        cpu = cpu_seconds(self.pid)
        result = h2load.run(url, body, rpc.metadata(fixture), calls=calls, **kw)
        cpu = cpu_seconds(self.pid) - cpu
        if self.metrics:
            after = handled(self.metrics, rpc.method)
            delta = {code: after.get(code, 0) - before.get(code, 0) for code in after}
            failed = {code: n for code, n in delta.items() if code != "OK" and n}
            if failed or delta.get("OK", 0) < result.calls:
                raise RuntimeError(f"{rpc.label}: {result.calls} calls sent, server says {delta}")
        return {"rps": result.rps, "cpu_us_per_call": 1e6 * cpu / result.calls,
                "p50_ms": result.p50_ms, "p99_ms": result.p99_ms}  # fmt: skip


def measure(
    rpc: DbRpc, fixture: Fixture, service: Target, bare: Target, options: argparse.Namespace
) -> dict[str, Any]:
    asyncio.run(check_reply(service.address, rpc, fixture))
    # Warm-up doubles as calibration: calls per phase follow from each side's rate.
    rate = {name: target.phase(rpc, fixture, options.warmup_calls)["rps"]
            for name, target in (("service", service), ("bare", bare))}  # fmt: skip
    rounds: dict[str, list[dict[str, float]]] = {"service": [], "bare": []}
    for number in range(options.rounds):
        order = ("bare", "service") if number % 2 == 0 else ("service", "bare")
        for name in order:
            target = service if name == "service" else bare
            calls = max(int(rate[name] * options.seconds), 100)
            rounds[name].append(target.phase(rpc, fixture, calls))
            rate[name] = rounds[name][-1]["rps"]
    ratios = [s["rps"] / b["rps"] for s, b in zip(rounds["service"], rounds["bare"], strict=True)]
    result: dict[str, Any] = {
        "label": rpc.label,
        "goal": rpc.goal,
        "ratio": statistics.median(ratios),
        "round_ratios": ratios,
        **{f"{name}_{key}": statistics.median(r[key] for r in rounds[name])
           for name in rounds for key in ("rps", "cpu_us_per_call")},
    }  # fmt: skip
    result["latency"] = _latency(rpc, fixture, service, bare, result, options)
    if options.profile_seconds > 0:
        result["profile"] = _profile(rpc, fixture, service, result["service_rps"], options)
    asyncio.run(check_reply(service.address, rpc, fixture))
    print(f"{rpc.label}: {result['service_rps']:.0f} vs bare {result['bare_rps']:.0f} calls/s, "
          f"ratio {result['ratio']:.2f} ({', '.join(f'{r:.2f}' for r in ratios)}); "
          f"CPU {result['service_cpu_us_per_call']:.0f} vs {result['bare_cpu_us_per_call']:.0f} "
          f"us/call; latency {result['latency']}", flush=True)  # fmt: skip
    return result


def _latency(
    rpc: DbRpc,
    fixture: Fixture,
    service: Target,
    bare: Target,
    figures: dict[str, Any],
    options: argparse.Namespace,
) -> dict[str, Any]:
    """p99 at a constant half of the bare server's capacity, service against bare."""
    offered = figures["bare_rps"] / 2
    latency: dict[str, Any] = {"offered_rps": offered}
    if figures["service_rps"] < offered * 1.1:
        # It would only measure a queue growing for as long as the phase lasts.
        latency["overloaded"] = True
        return latency
    calls = max(int(offered * options.latency_seconds), 200)
    kw = {"rate": offered, "streams": 64}
    latency["bare_p99_ms"] = bare.phase(rpc, fixture, calls, **kw)["p99_ms"]
    latency["service_p99_ms"] = service.phase(rpc, fixture, calls, **kw)["p99_ms"]
    latency["ratio"] = latency["service_p99_ms"] / latency["bare_p99_ms"]
    return latency


def _profile(
    rpc: DbRpc, fixture: Fixture, service: Target, rps: float, options: argparse.Namespace
) -> dict[str, Any]:
    calls = int(rps * (options.profile_seconds + 2))
    with contextlib.ExitStack() as stack:
        import concurrent.futures

        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1))
        load = pool.submit(service.phase, rpc, fixture, calls)
        time.sleep(0.5)
        stacks = pyspy.record(service.pid, options.profile_seconds)
        load.result()
    _keep_stacks(rpc.name, stacks, options)
    return pyspy.by_package(stacks) if stacks else {}


def _keep_stacks(name: str, stacks: str | None, options: argparse.Namespace) -> None:
    if stacks and options.profile_out:
        Path(options.profile_out).mkdir(parents=True, exist_ok=True)
        Path(options.profile_out, f"{name}.txt").write_text(stacks)


# -- orchestration --------------------------------------------------------------------------------


def run(options: argparse.Namespace) -> dict[str, Any]:
    chosen = [rpc for rpc in ENTRIES if not options.only or rpc.name in options.only]
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-db-rpcs-") as folder:
        import subprocess

        bare_process = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare"], stdout=subprocess.PIPE, text=True
        )
        platform = Platform(Path(folder), platform_env(prefix))
        try:
            assert bare_process.stdout is not None
            line = bare_process.stdout.readline().split()
            if not line or line[0] != "READY":
                raise RuntimeError("the bare server did not start")
            bare = Target(f"127.0.0.1:{line[1]}", bare_process.pid, None)
            platform.start()
            pids = {label: pids[0] for label, pids in platform.processes().items()}
            with loop_runner() as runner:
                try:
                    fixture = runner.run(prepare(platform))
                except Exception:
                    print("\n".join(platform.output[-60:]), file=sys.stderr)  # what went wrong
                    raise
            for rpc in chosen:
                grpc_port, metrics_port = SERVICE_PORTS[rpc.service]
                service = Target(platform.address(grpc_port), pids[rpc.service],
                                 platform.address(metrics_port))  # fmt: skip
                results[rpc.name] = measure(rpc, fixture, service, bare, options)
            if not options.only or "CreateProject" in options.only:
                results["CreateProject"] = measure_create_project(
                    platform.address(4001), fixture, {"project": pids["project"],
                                                      "billing": pids["billing"]},
                    seconds=options.seconds, rounds=options.rounds,
                    profile_seconds=options.profile_seconds,
                )  # fmt: skip
                for process, stacks in results["CreateProject"].pop("stacks", {}).items():
                    _keep_stacks(f"CreateProject-{process}", stacks, options)
        finally:
            platform.stop()
            bare_process.terminate()
            bare_process.wait(timeout=15)
            asyncio.run(_drop_databases(prefix))
    return results


def main() -> int:
    if sys.argv[1:2] == ["--serve-bare"]:
        serve_bare()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="about how long each phase is")
    parser.add_argument("--warmup-calls", type=int, default=400)
    parser.add_argument("--latency-seconds", type=float, default=3.0)
    parser.add_argument("--profile-seconds", type=float, default=3.0, help="0: no profile")
    parser.add_argument("--profile-out", help="keep py-spy's collapsed stacks in this folder")
    parser.add_argument("--only", type=lambda text: set(text.split(",")),
                        help="comma-separated RPC names (CreateProject included)")  # fmt: skip
    parser.add_argument("--json", help="also write the result as JSON to this file")
    options = parser.parse_args()
    h2load.ensure_h2load()
    result = run(options)
    print(json.dumps(result, indent=2))
    if options.json:  # for benchmarks/run_all.py
        Path(options.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
