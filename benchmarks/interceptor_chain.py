"""Overhead of meshcore's full server interceptor chain against a bare grpc.aio server.

One run, one machine: the same trivial unary handler is served by separate server processes

* ``bare``   - no interceptors;
* ``chain``  - ``build_server_chain``: call context, tracing (default: off, OTEL_* unset),
  logging at its default INFO level (JSON handler installed), metrics, auth with a valid HS256
  token (verified once, then cached), in-process rate limit that never trips, error mapping;
* ``traced`` - the same chain with tracing on and meshcore's default sampler (parent-based, 10 %
  of new traces; ``OTEL_TRACES_SAMPLER`` unset), batch span processor, an exporter that drops
  spans (no network in the measurement). ``traced_all`` (diagnostic) samples every call.

A load generator in this process measures each server in turn, interleaving the variants over
``--rounds`` rounds so background noise hits all of them alike, in two phases:

1. saturated: ``--concurrency`` calls kept in flight; gives throughput, server CPU per call and
   the saturated latency (at saturation latency is mostly queueing: by Little's law it is about
   concurrency / throughput, so its ratio just mirrors the throughput ratio);
2. fixed rate: calls sent on a schedule at ``--load`` (default 40 %) of bare's throughput, the
   same rate for every variant; its p99 is the latency the chain adds to a call (``p99_ms`` and
   ``p99_ratio`` in the summary; the saturated ones are ``saturated_p99_*``).

Each ratio is the median of per-round ratios (a variant against bare in the same round), as in
the other benchmarks; the per-round ratios are in the summary too.

Every reply is checked (status OK and the expected payload); any failure aborts the run.

    uv run python benchmarks/interceptor_chain.py [--seconds 2] [--rounds 7] [--concurrency 32]
        [--latency-seconds 4]

Goal (issue 3): throughput ratio >= 0.8 and p99 ratio <= 1.3 for ``chain``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds

METHOD = "/bench.v1.Echo/Ping"
SECRET = "benchmark-jwt-secret-0123456789abcdef-0123"  # noqa: S105 - a throwaway bench key
VARIANTS = ("bare", "chain", "traced")
# Where overhead comes from (--variants): grpc's interceptor hook alone, meshcore's base alone,
# and tracing with every call sampled (the OpenTelemetry SDK's own default sampler).
DIAGNOSTIC_VARIANTS = ("passthrough", "noop", "traced_all")


def _identity(value: bytes) -> bytes:
    return value


def _token() -> str:
    import jwt

    now = int(time.time())
    claims = {
        "sub": "bench-user",
        "typ": "access",
        "iss": "zoptal-auth",
        "aud": "zoptal",
        "permissions": ["bench:ping"],
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


# --------------------------------------------------------------------------- server process


def _diagnostic_interceptor(variant: str) -> Any:
    import grpc.aio
    from meshcore.interceptors import ServerInterceptor

    if variant == "noop":  # meshcore's base with nothing to do: the cost of wrapping alone
        return ServerInterceptor()

    class Passthrough(grpc.aio.ServerInterceptor):  # grpc's own interceptor hook alone
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            return await continuation(details)

    return Passthrough()


def _interceptors(variant: str) -> list[Any]:
    if variant == "bare":
        return []
    if variant in DIAGNOSTIC_VARIANTS:
        return [_diagnostic_interceptor(variant)]
    import logging

    from meshcore.interceptors import AuthOptions, RateLimitOptions, build_server_chain
    from meshcore.observability import configure_logging
    from prometheus_client import CollectorRegistry

    configure_logging("INFO", service="bench")
    logging.getLogger("meshcore.access").setLevel(logging.NOTSET)  # inherit INFO from root
    provider = None
    if variant in ("traced", "traced_all"):
        from meshcore.observability import configure_tracing
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        class DroppingExporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = configure_tracing(
            "bench",
            {},
            exporter=DroppingExporter(),
            sampler=ALWAYS_ON if variant == "traced_all" else None,
        )
    return build_server_chain(
        auth=AuthOptions(
            jwt_secret=SECRET,
            issuer="zoptal-auth",
            audience="zoptal",
            key_source=None,
            required_permissions={METHOD: ["bench:ping"]},
        ),
        rate_limit=RateLimitOptions(redis_url=None, window_ms=60_000, max_requests=10**9),
        metrics_registry=CollectorRegistry(),
        tracer_provider=provider,
    )


async def _serve(variant: str, port_file: str) -> None:
    import grpc
    import grpc.aio

    async def ping(request: bytes, context: Any) -> bytes:
        return b"pong:" + request

    server = grpc.aio.server(interceptors=_interceptors(variant))
    handler = grpc.unary_unary_rpc_method_handler(
        ping, request_deserializer=_identity, response_serializer=_identity
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.v1.Echo", {"Ping": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    # As MeshServer.serve does in production: start-up objects frozen out of the collector's
    # scans. Every variant gets it, bare included; without it a full collection of the chain's
    # bigger heap (meshcore, prometheus, OpenTelemetry imported) paused the server for tens of
    # milliseconds, which is what decided the p99 of a round.
    gc.collect()
    gc.freeze()
    _announce(port_file, port)
    await server.wait_for_termination()


def _announce(port_file: str, port: int) -> None:
    Path(port_file).write_text(str(port))


# --------------------------------------------------------------------------- load generator


async def _measure(address: str, seconds: float, concurrency: int, pid: int) -> dict[str, float]:
    import grpc
    import grpc.aio

    metadata = (("authorization", f"Bearer {_token()}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        ping = channel.unary_unary(
            METHOD, request_serializer=_identity, response_deserializer=_identity
        )
        for _ in range(200):  # warm up: connection, handler cache, token cache
            assert await ping(b"w", metadata=metadata) == b"pong:w"
        latencies: list[float] = []
        stop_at = time.perf_counter() + seconds

        async def worker(index: int) -> None:
            payload = f"p{index}".encode()
            expected = b"pong:" + payload
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                reply = await ping(payload, metadata=metadata)
                latencies.append(time.perf_counter() - started)
                if reply != expected:
                    raise AssertionError(f"unexpected reply {reply!r}")

        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
    latencies.sort()
    return {
        "calls": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "server_cpu_us_per_call": 1e6 * cpu / len(latencies),
    }


async def _measure_latency(address: str, rate: float, seconds: float) -> dict[str, float]:
    """Open loop: calls sent on a fixed schedule at ``rate``, whatever the replies do.

    Latency counts from each call's scheduled time, so a server that falls behind is charged
    for the wait (no coordinated omission).
    """
    import grpc
    import grpc.aio

    metadata = (("authorization", f"Bearer {_token()}"),)
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        ping = channel.unary_unary(
            METHOD, request_serializer=_identity, response_deserializer=_identity
        )
        for _ in range(100):
            assert await ping(b"w", metadata=metadata) == b"pong:w"

        failures: list[str] = []

        async def one(index: int, scheduled: float) -> None:
            payload = f"r{index}".encode()
            try:
                reply = await ping(payload, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                failures.append(error.code().name)
                return
            if reply != b"pong:" + payload:
                raise AssertionError(f"unexpected reply {reply!r}")
            latencies.append(time.perf_counter() - scheduled)

        calls = []
        start = time.perf_counter()
        for index in range(max(1, int(rate * seconds))):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            calls.append(asyncio.create_task(one(index, scheduled)))
        await asyncio.gather(*calls)
    if failures:
        # Not OK fails the run (after the summary is printed); say which codes came back.
        print(f"{address}: {len(failures)} calls failed: {sorted(set(failures))}", flush=True)
    latencies.sort()
    if not latencies:
        latencies.append(float("nan"))
    return {
        "failed": float(len(failures)),
        "rate": rate,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def _start(variant: str, directory: str) -> tuple[subprocess.Popen[bytes], str]:
    port_file = os.path.join(directory, f"{variant}.port")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", variant, "--port-file", port_file],
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file) or not Path(port_file).read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{variant} server did not start")
        time.sleep(0.05)
    return process, f"127.0.0.1:{Path(port_file).read_text()}"


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    variants = tuple(args.variants.split(","))
    saturated: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    fixed_rate: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory() as directory:
        servers = {variant: _start(variant, directory) for variant in variants}
        try:
            for round_index in range(args.rounds):
                for variant in _order(variants, round_index):
                    process, address = servers[variant]
                    result = await _measure(address, args.seconds, args.concurrency, process.pid)
                    saturated[variant].append(result)
                    _print_round("saturated", round_index, variant, result)
            # Latency at the same offered load for every variant, well below what each sustains.
            rate = args.load * statistics.median(r["rps"] for r in saturated["bare"])
            for round_index in range(args.rounds):
                for variant in _order(variants, round_index):
                    result = await _measure_latency(servers[variant][1], rate, args.latency_seconds)
                    fixed_rate[variant].append(result)
                    _print_round("fixed-rate", round_index, variant, result)
        finally:
            for process, _ in servers.values():
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
    summary: dict[str, Any] = {}
    for variant in variants:
        rounds = saturated[variant]
        entry = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        entry["saturated_p99_ms"] = entry.pop("p99_ms")
        entry["saturated_p50_ms"] = entry.pop("p50_ms")
        entry["p50_ms"] = statistics.median(r["p50_ms"] for r in fixed_rate[variant])
        entry["p99_ms"] = statistics.median(r["p99_ms"] for r in fixed_rate[variant])
        entry["fixed_rate"] = fixed_rate[variant][0]["rate"]
        entry["failed_calls"] = sum(r["failed"] for r in fixed_rate[variant])
        summary[variant] = entry
    for variant in variants[1:]:
        # Paired, as every ratio in benchmarks/: each round's variant against bare in the same
        # round (measured back to back), then the median of those ratios, so a slow stretch of
        # the host moves both sides of a ratio instead of one median.
        throughput = _paired(saturated, variant, "rps")
        p99 = _paired(fixed_rate, variant, "p99_ms")
        summary[f"{variant}_vs_bare"] = {
            "throughput_ratio": statistics.median(throughput),
            "p99_ratio": statistics.median(p99),
            "saturated_p99_ratio": statistics.median(_paired(saturated, variant, "p99_ms")),
            "server_cpu_per_call_ratio": statistics.median(
                _paired(saturated, variant, "server_cpu_us_per_call")
            ),
            "throughput_round_ratios": throughput,
            "p99_round_ratios": p99,
        }
    return summary


def _paired(rounds: dict[str, list[dict[str, float]]], variant: str, key: str) -> list[float]:
    return [
        mine[key] / bare[key] for mine, bare in zip(rounds[variant], rounds["bare"], strict=True)
    ]


def _order(variants: tuple[str, ...], round_index: int) -> tuple[str, ...]:
    # Alternate the order so a slow moment of the machine does not always hit one variant.
    return variants if round_index % 2 == 0 else tuple(reversed(variants))


def _print_round(phase: str, round_index: int, variant: str, result: dict[str, float]) -> None:
    shown = json.dumps({key: round(value, 2) for key, value in result.items()})
    print(f"{phase} round {round_index + 1} {variant:>6}: {shown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--load", type=float, default=0.4, help="fixed-rate phase: fraction of bare throughput"
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=4.0,
        help="fixed-rate phase: seconds per round (a p99 needs thousands of calls: with 1.5 s,"
        " a dozen slow calls decided it)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, bare first; also {', '.join(DIAGNOSTIC_VARIANTS)}",
    )
    parser.add_argument("--json", help="also write the summary as JSON to this file")
    parser.add_argument("--serve", choices=VARIANTS + DIAGNOSTIC_VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        uvloop = None
    runner = uvloop.run if uvloop is not None else asyncio.run
    if args.serve:
        runner(_serve(args.serve, args.port_file))
        return
    summary = runner(_run(args))
    print(json.dumps(summary, indent=2))
    if args.json:  # for benchmarks/run_all.py
        Path(args.json).write_text(json.dumps(summary))
    failed = {v: summary[v]["failed_calls"] for v in args.variants.split(",")}
    verdict = summary["chain_vs_bare"]
    print(
        f"chain/bare: throughput {verdict['throughput_ratio']:.3f} (goal >= 0.8), "
        f"p99 at a fixed rate {verdict['p99_ratio']:.3f} (goal <= 1.3), "
        f"p99 saturated {verdict['saturated_p99_ratio']:.3f}, "
        f"server CPU per call {verdict['server_cpu_per_call_ratio']:.3f}"
    )
    if any(failed.values()):
        raise SystemExit(f"calls that did not end OK: {failed}")


if __name__ == "__main__":
    main()
