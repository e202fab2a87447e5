"""A typed mesh client against a raw generated stub, same server, one run.

One server process (plain ``grpc.aio``, uvloop when available) answers Auth's ValidateToken with
a fixed ``valid = true`` reply and serves ``grpc.health.v1``. This process drives it, one variant
at a time, with ``--concurrency`` calls in flight:

* ``raw``   - ``AuthServiceStub(channel).ValidateToken(request, timeout=...)`` on one channel
  made before the measurement;
* ``typed`` - ``AuthServiceClient(manager).validate_token(token)``: discovery, p2c-ewma
  balancing, the per-endpoint breaker, the retry policy and a deadline on every call (client
  interceptors off, so this measures the mesh client itself);

and, as diagnostics of what meshcore's client interceptors cost on either path,

* ``raw+icpt`` / ``typed+icpt`` - the same two with ``default_client_interceptors()`` (metrics
  and request id / traceparent / deadline propagation) on the channel.

The machine is shared, so throughput swings from second to second. The variants therefore run
in short back-to-back slices, ``--rounds`` times (alternating their order), and the reported
ratio is the median of the per-round ratios: two slices of one round see the same background
load. This process's CPU time per call (``time.process_time``, gRPC's threads included) is
reported too, as the figure least disturbed by other processes. Every reply is checked (status
OK and ``valid``); any failure aborts the run. Goal (issue 4): typed / raw throughput >= 0.9.

    uv run python benchmarks/typed_client.py [--seconds 0.5] [--rounds 20] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

VARIANTS = ("raw", "typed", "raw+icpt", "typed+icpt")
TOKEN = "benchmark-token"  # noqa: S105 - a fixed request payload, not a secret


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def serve(port: int) -> None:
    """The server process: a fixed ValidateToken reply and grpc.health.v1."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc

    reply = auth_pb2.ValidateTokenResponse(valid=True, user_id="u1")

    class Auth(auth_pb2_grpc.AuthServiceServicer):
        async def ValidateToken(self, request: Any, context: Any) -> Any:
            return reply

    async def main() -> None:
        server = grpc.aio.server()
        # Only ValidateToken is served; the generated stubs declare every RPC abstract.
        auth_pb2_grpc.add_AuthServiceServicer_to_server(Auth(), server)  # type: ignore[abstract]
        health_servicer = health.aio.HealthServicer()
        await health_servicer.set(
            "zoptal.auth.v1.AuthService", health_pb2.HealthCheckResponse.SERVING
        )
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print(bound, flush=True)
        await server.wait_for_termination()

    with _runner() as runner:
        runner.run(main())


async def measure(
    call: Callable[[], Awaitable[bool]], seconds: float, concurrency: int
) -> tuple[float, float]:
    """(replies per second, client CPU seconds per reply); raises on any failed reply."""
    completed = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal completed
        while time.perf_counter() < stop_at:
            if not await call():
                raise AssertionError("a reply was not valid")
            completed += 1

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return completed / elapsed, cpu / max(completed, 1)


async def drive(
    address: str, seconds: float, rounds: int, concurrency: int
) -> dict[str, list[tuple[float, float]]]:
    import grpc
    from meshcore.client_manager import create_grpc_client_manager, default_client_interceptors
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
    from zoptal.clients import AuthServiceClient

    request = auth_pb2.ValidateTokenRequest(token=TOKEN)
    raw_channel = grpc.aio.insecure_channel(address)
    icpt_channel = grpc.aio.insecure_channel(address, interceptors=default_client_interceptors())
    raw_stub = auth_pb2_grpc.AuthServiceStub(raw_channel)
    icpt_stub = auth_pb2_grpc.AuthServiceStub(icpt_channel)
    typed_manager = create_grpc_client_manager({"auth": address}, interceptors=())
    icpt_manager = create_grpc_client_manager({"auth": address})  # default interceptors
    typed = AuthServiceClient(typed_manager)
    typed_icpt = AuthServiceClient(icpt_manager)

    async def raw() -> bool:
        return bool((await raw_stub.ValidateToken(request, timeout=30.0)).valid)

    async def raw_icpt() -> bool:
        return bool((await icpt_stub.ValidateToken(request, timeout=30.0)).valid)

    async def typed_call() -> bool:
        return (await typed.validate_token(TOKEN)).valid

    async def typed_icpt_call() -> bool:
        return (await typed_icpt.validate_token(TOKEN)).valid

    calls = {"raw": raw, "typed": typed_call, "raw+icpt": raw_icpt, "typed+icpt": typed_icpt_call}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    try:
        for name in VARIANTS:  # warm up every path (connections, method caches)
            await measure(calls[name], 0.5, concurrency)
        for round_index in range(rounds):
            order = VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))
            for name in order:
                results[name].append(await measure(calls[name], seconds, concurrency))
    finally:
        await typed_manager.close()
        await icpt_manager.close()
        await raw_channel.close()
        await icpt_channel.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", help="also write the ratios as JSON to this file")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return 0

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        address = f"127.0.0.1:{port}"
        with _runner() as runner:
            results = runner.run(drive(address, args.seconds, args.rounds, args.concurrency))
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(5)

    def ratio(a: str, b: str) -> float:
        return statistics.median(x[0] / y[0] for x, y in zip(results[a], results[b], strict=True))

    print(
        f"ValidateToken, {args.concurrency} in flight, {args.rounds} rounds of {args.seconds:g} s"
    )
    for name in VARIANTS:
        rate = statistics.median(r for r, _ in results[name])
        cpu = statistics.median(c for _, c in results[name]) * 1e6
        print(f"  {name:<11} {rate:>9,.0f} calls/s  {cpu:7.1f} us client CPU/call (medians)")
    headline = ratio("typed", "raw")
    print(f"typed / raw             = {headline:.3f}  (median per-round ratio; goal >= 0.9)")
    print(f"typed+icpt / raw+icpt   = {ratio('typed+icpt', 'raw+icpt'):.3f}")
    print(f"typed+icpt / raw        = {ratio('typed+icpt', 'raw'):.3f}")
    if args.json:  # for benchmarks/run_all.py
        rates = {name: statistics.median(r for r, _ in results[name]) for name in VARIANTS}
        result = {
            "typed_vs_raw": headline,
            "round_ratios": [
                x[0] / y[0] for x, y in zip(results["typed"], results["raw"], strict=True)
            ],
            "typed_icpt_vs_raw_icpt": ratio("typed+icpt", "raw+icpt"),
            "rps": rates,
        }
        with open(args.json, "w") as out:
            json.dump(result, out)
    return 0 if headline >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
