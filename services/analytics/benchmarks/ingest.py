"""Analytics ingest speed, side by side in one run (a benchmark, not a test).

1. TrackEvent throughput: the real Analytics service (``python -m zoptal_analytics``: production
   interceptor chain, PostgreSQL, buffered durable writes) against a bare ``grpc.aio`` server
   whose TrackEvent returns a fixed reply. Load comes from ``--clients`` client processes, each
   keeping ``--concurrency`` calls in flight; every reply is checked. One unmeasured warm-up
   round per server (connection pools, caches), then the variants alternate over ``--rounds``
   rounds; the median of the per-round ratios counts. Goal (issue 6): ratio >= 0.7.
2. Batch ingest into PostgreSQL: ``--events`` rows streamed through IngestEvents (chunks of
   1000) against asyncpg ``copy_records_to_table`` of the same number of rows into the same
   schema, alternating over ``--ingest-rounds`` rounds (fresh ids each round); the median of
   the per-round ratios counts. Goal: ratio >= 0.5.

    uv run python services/analytics/benchmarks/ingest.py [--seconds 5] [--rounds 3]

Needs the PostgreSQL of the test fixtures (``TEST_POSTGRES_DSN``, default postgres@127.0.0.1).
A real Auth runs beside it: Analytics verifies the caller's token through Auth's JWKS and polls
its revocations, and the caller's token comes from Project's own credential.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


@contextlib.contextmanager
def _auth(workdir: Path) -> Iterator[tuple[dict[str, str], str]]:
    """A real Auth (SQLite in ``workdir``) with Analytics' and Project's identities provisioned.

    Yields the variables that point Analytics at it (peer address, JWKS, its own credential) and
    the token Project's credential buys: what a real caller of TrackEvent carries.
    """
    import grpc
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc

    grpc_port, http_port = _free_port(), _free_port()
    identities = workdir / "identities"
    env = {
        **os.environ,
        "DATA_DIR": str(workdir),
        "GRPC_PORT": str(grpc_port),
        "AUTH_HTTP_PORT": str(http_port),
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "SERVICE_TOKEN_TTL_SECONDS": "3600",  # outlives every round; renewal is not measured
    }
    for variable in ("DATABASE_URL", "REDIS_URL"):
        env.pop(variable, None)
    ensure = ["service-identity", "ensure", "--credentials-dir", str(identities)]
    for command in (["migrate"], [*ensure, "analytics", "project"]):
        subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "zoptal_auth", *command],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    with _process(["-m", "zoptal_auth", "serve"], env):
        address = f"127.0.0.1:{grpc_port}"
        asyncio.run(_wait_serving(address))
        project = json.loads((identities / "project" / "credentials.json").read_text())
        with grpc.insecure_channel(address) as channel:
            issued = auth_pb2_grpc.AuthServiceStub(channel).IssueServiceToken(
                auth_pb2.IssueServiceTokenRequest(
                    client_id=project["client_id"], client_secret=project["client_secret"]
                ),
                timeout=30,
            )
        yield (
            {
                "AUTH_ADDR": address,
                "AUTH_JWKS_URL": f"http://127.0.0.1:{http_port}/.well-known/jwks.json",
                "SERVICE_CREDENTIALS_FILE": str(identities / "analytics" / "credentials.json"),
            },
            issued.access_token,
        )


# -------------------------------------------------------------------------- processes


def bare_server(port: int) -> None:
    import grpc
    from zoptal.analytics.v1 import analytics_pb2, analytics_pb2_grpc

    reply = analytics_pb2.TrackEventResponse(event_id="0123456789abcdef0123456789abcdef")

    class Fixed(analytics_pb2_grpc.AnalyticsServiceServicer):
        async def TrackEvent(self, request: Any, context: Any) -> Any:
            return reply

    async def main() -> None:
        server = grpc.aio.server()
        # Only TrackEvent is measured; the other methods stay unimplemented on purpose.
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(Fixed(), server)  # type: ignore[abstract]
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    with _runner() as runner:
        runner.run(main())


def client(target: str, seconds: float, start_at: float, concurrency: int) -> None:
    """Load ``target`` until ``start_at + seconds``; print the checked replies as JSON."""
    import grpc
    from zoptal.analytics.v1 import analytics_pb2, analytics_pb2_grpc

    metadata = (("x-service-token", os.environ["BENCH_TOKEN"]),)
    end_at = start_at + seconds
    counted = {"ok": 0}
    failures: list[str] = []

    async def worker(stub: Any, number: int) -> None:
        index = 0
        while time.time() < end_at and not failures:
            request = analytics_pb2.TrackEventRequest(
                name="bench.event", user_id=f"u{number}-{index % 50}"
            )
            try:
                reply = await stub.TrackEvent(request, metadata=metadata, timeout=30)
            except grpc.aio.AioRpcError as error:
                failures.append(f"{error.code().name}: {error.details()}")
                return
            index += 1
            if not reply.event_id:
                failures.append("empty event id")
                return
            if start_at <= time.time() < end_at:
                counted["ok"] += 1

    async def main() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
            await asyncio.gather(*(worker(stub, n) for n in range(concurrency)))

    with _runner() as runner:
        runner.run(main())
    print(json.dumps({"ok": counted["ok"], "failures": failures[:3]}), flush=True)


# -------------------------------------------------------------------------- orchestration


@contextlib.contextmanager
def _database() -> Iterator[str]:
    import asyncpg  # type: ignore[import-untyped]

    name = f"zoptal_bench_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
        [sys.executable, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


async def _wait_serving(address: str) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + 90
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{address} never became SERVING")


def _round(address: str, args: argparse.Namespace, token: str) -> int:
    start_at = time.time() + 2.0
    env = {**os.environ, "BENCH_TOKEN": token}
    clients = [
        subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                __file__,
                "client",
                address,
                str(args.seconds),
                str(start_at),
                str(args.concurrency),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.clients)
    ]
    total = 0
    for process in clients:
        out, _ = process.communicate(timeout=args.seconds + 120)
        result = json.loads(out.strip().splitlines()[-1])
        if result["failures"]:
            raise RuntimeError(f"{address}: {result['failures']}")
        total += result["ok"]
    return total


async def _ingest_stream(address: str, token: str, rows: list[dict[str, Any]]) -> float:
    import grpc
    from zoptal.analytics.v1 import analytics_pb2 as pb, analytics_pb2_grpc

    chunks = [
        pb.IngestEventsRequest(events=[pb.Event(**row) for row in rows[i : i + 1000]])
        for i in range(0, len(rows), 1000)
    ]

    async def stream() -> AsyncIterator[pb.IngestEventsRequest]:
        for chunk in chunks:
            yield chunk

    async with grpc.aio.insecure_channel(address) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        began = time.perf_counter()
        reply = await stub.IngestEvents(stream(), metadata=(("x-service-token", token),))
        elapsed = time.perf_counter() - began
    if reply.accepted_count != len(rows):
        raise RuntimeError(f"IngestEvents accepted {reply.accepted_count} of {len(rows)}")
    return elapsed


async def _copy(dsn: str, rows: list[dict[str, Any]]) -> float:
    import asyncpg

    now = int(time.time() * 1000)
    records = [
        (r["event_id"], r["name"], r["user_id"], "", f"u:{r['user_id']}", "", now, now, "{}",
         "", "", "")
        for r in rows
    ]  # fmt: skip
    columns = [
        "event_id", "name", "user_id", "anonymous_id", "actor", "session_id", "occurred_at_ms",
        "received_at_ms", "properties", "page_url", "page_title", "referrer",
    ]  # fmt: skip
    connection = await asyncpg.connect(dsn)
    try:
        began = time.perf_counter()
        await connection.copy_records_to_table("events", records=records, columns=columns)
        return time.perf_counter() - began
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--events", type=int, default=50_000, help="rows per ingest round")
    parser.add_argument("--ingest-rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the ratios as JSON to this file")
    args = parser.parse_args()

    from meshcore.migrations import run_migrations
    from zoptal_analytics.app import MIGRATIONS_DIR

    bare_port, analytics_port = _free_port(), _free_port()
    with (
        tempfile.TemporaryDirectory(prefix="zoptal-bench-auth-") as workdir,
        _auth(Path(workdir)) as (auth_env, token),
        _database() as service_dsn,
        _database() as copy_dsn,
    ):
        service_url = service_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
        run_migrations(service_url, MIGRATIONS_DIR)
        run_migrations(
            copy_dsn.replace("postgresql://", "postgresql+asyncpg://", 1), MIGRATIONS_DIR
        )
        env = {
            **os.environ,
            "DATABASE_URL": service_url,
            "GRPC_PORT": str(analytics_port),
            "METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_MAX_REQUESTS": "100000000",
            "RATE_LIMIT_SERVICE_MAX_REQUESTS": "100000000",
            **auth_env,
        }
        env.pop("REDIS_URL", None)
        with (
            _process([__file__, "bare", str(bare_port)]),
            _process(["-m", "zoptal_analytics", "serve"], env),
        ):
            bare, served = f"127.0.0.1:{bare_port}", f"127.0.0.1:{analytics_port}"
            asyncio.run(_wait_serving(served))
            warm_up = argparse.Namespace(**{**vars(args), "seconds": min(args.seconds, 2.0)})
            for address in (bare, served):
                _round(address, warm_up, token)
            results: dict[str, list[int]] = {"bare": [], "analytics": []}
            for _ in range(args.rounds):
                results["bare"].append(_round(bare, args, token))
                results["analytics"].append(_round(served, args, token))
            ingest_rounds: list[tuple[float, float]] = []  # (ingest seconds, copy seconds)
            for number in range(args.ingest_rounds):
                rows = [
                    {
                        "event_id": f"bulk-{number}-{i}",
                        "name": "bulk.event",
                        "user_id": f"u{i % 500}",
                    }
                    for i in range(args.events)
                ]
                ingest_rounds.append(
                    (
                        asyncio.run(_ingest_stream(served, token, rows)),
                        asyncio.run(_copy(copy_dsn, rows)),
                    )
                )
    bare_rate = statistics.median(results["bare"]) / args.seconds
    served_rate = statistics.median(results["analytics"]) / args.seconds
    # Ratios are medians of paired (same-round) ratios, in the printout as in the JSON.
    paired = [a / b for a, b in zip(results["analytics"], results["bare"], strict=True)]
    ingest_ratios = [copy_s / ingest_s for ingest_s, copy_s in ingest_rounds]
    ingest_s = statistics.median(ingest_s for ingest_s, _ in ingest_rounds)
    copy_s = statistics.median(copy_s for _, copy_s in ingest_rounds)
    print(f"TrackEvent  bare {bare_rate:8.0f}/s  analytics {served_rate:8.0f}/s  "
          f"ratio {statistics.median(paired):.2f}  (goal >= 0.7)")  # fmt: skip
    print(f"batch ingest  copy {args.events / copy_s:8.0f} rows/s  IngestEvents "
          f"{args.events / ingest_s:8.0f} rows/s  ratio {statistics.median(ingest_ratios):.2f}"
          "  (goal >= 0.5)")  # fmt: skip
    print(json.dumps({"rounds": results, "ingest_rounds": ingest_rounds}))
    if args.json:  # for benchmarks/run_all.py
        result = {
            "track_event_ratio": statistics.median(paired),
            "ingest_ratio": statistics.median(ingest_ratios),
            "bare_rps": bare_rate,
            "analytics_rps": served_rate,
            "round_ratios": paired,
            "ingest_round_ratios": ingest_ratios,
            "ingest_rows_per_second": args.events / ingest_s,
            "copy_rows_per_second": args.events / copy_s,
        }
        with open(args.json, "w") as out:
            json.dump(result, out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        bare_server(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        client(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
