"""Every speed goal of the platform, measured in one command, written to ``docs/benchmarks.md``.

Runs each benchmark script as its own process (each writes its result with ``--json``), one after
the other, and puts every ratio next to its goal with PASS or MISS. Ratios are medians of paired
rounds (the two sides of a ratio run back to back, so background load hits both alike); every
reply is checked by the scripts themselves and a failed reply fails that benchmark, which is then
reported as ERROR, never as a figure. Speed goals live here, never as timing assertions in tests.

    uv run python benchmarks/run_all.py            # the full run (about 5 minutes)
    uv run python benchmarks/run_all.py --quick    # a smoke run: tiny rounds, meaningless figures
    uv run python benchmarks/run_all.py --only typed_client,platform --output /tmp/bench.md

Needs the PostgreSQL of the test fixtures for ``two_hop`` and ``ingest`` (``TEST_POSTGRES_DSN``);
``db_rpcs`` needs PostgreSQL at 127.0.0.1:5432, Redis at 127.0.0.1:6379 and h2load (installs
Debian's ``nghttp2-client`` when missing).
Exit status: 1 when a benchmark failed to produce a result (a MISS is a finding, not a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, cpu_times, machine, steal_share
from report import Row, render

Extract = Callable[[dict[str, Any]], list[Row]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    full: Sequence[str]
    quick: Sequence[str]
    extract: Extract
    timeout_seconds: float = 300.0
    notes: Sequence[str] = field(default_factory=tuple)


def _validate_token(result: dict[str, Any]) -> list[Row]:
    return [
        Row("2", "Auth ValidateToken / bare grpc.aio, throughput", result["throughput_ratio"],
            ">=", 0.7, f"{result['auth_rps']:.0f} vs {result['bare_rps']:.0f} calls/s",
            result.get("round_ratios", ())),
        Row("2", "same, capacity (bare CPU per call / Auth CPU per call)",
            result["capacity_ratio"], None, None, "the figure that carries over when clients "
            "are the bottleneck"),
    ]  # fmt: skip


def _interceptor_chain(result: dict[str, Any]) -> list[Row]:
    chain, traced = result["chain_vs_bare"], result["traced_vs_bare"]
    rates = f"{result['chain']['rps']:.0f} vs {result['bare']['rps']:.0f} calls/s"
    p99 = f"{result['chain']['p99_ms']:.2f} vs {result['bare']['p99_ms']:.2f} ms"
    return [
        Row("3", "full server chain / bare, throughput", chain["throughput_ratio"], ">=", 0.8,
            rates, chain.get("throughput_round_ratios", ())),
        Row("3", "full server chain / bare, p99 latency at a fixed offered load",
            chain["p99_ratio"], "<=", 1.3, p99, chain.get("p99_round_ratios", ())),
        Row("3", "chain with tracing on (default sampler) / bare, throughput",
            traced["throughput_ratio"], None, None, "diagnostic"),
        Row("3", "same chain / bare, server CPU per call", chain["server_cpu_per_call_ratio"],
            None, None, "diagnostic: the capacity a server loses to the chain"),
    ]  # fmt: skip


def _chain_instructions(result: dict[str, Any]) -> list[Row]:
    per_call = result["instructions_per_call"]
    return [
        Row("3", "same chain / bare, instructions per call (callgrind)", result["ratio"], None,
            None, f"{per_call['chain']:,.0f} vs {per_call['bare']:,.0f}; diagnostic, free of "
            "host noise"),
    ]  # fmt: skip


def _typed_client(result: dict[str, Any]) -> list[Row]:
    rates = result["rps"]
    return [
        Row("4", "typed mesh client / raw stub, throughput", result["typed_vs_raw"], ">=", 0.9,
            f"{rates['typed']:.0f} vs {rates['raw']:.0f} calls/s", result.get("round_ratios", ())),
        Row("4", "same, both with meshcore client interceptors", result["typed_icpt_vs_raw_icpt"],
            None, None, "diagnostic"),
    ]  # fmt: skip


def _two_hop(result: dict[str, Any]) -> list[Row]:
    return [
        Row("5", f"{rpc} through meshcore / bare baseline (PostgreSQL)", figures["ratio_median"],
            None, None, f"{figures['mesh_rps']:.0f} vs {figures['bare_rps']:.0f} calls/s",
            figures.get("ratios", ()))
        for rpc, figures in result.items()
    ]  # fmt: skip


def _ingest(result: dict[str, Any]) -> list[Row]:
    return [
        Row("6", "Analytics TrackEvent / bare grpc.aio, throughput", result["track_event_ratio"],
            ">=", 0.7, f"{result['analytics_rps']:.0f} vs {result['bare_rps']:.0f} calls/s",
            result.get("round_ratios", ())),
        Row("6", "IngestEvents / asyncpg copy_records_to_table, rows per second",
            result["ingest_ratio"], ">=", 0.5,
            f"{result['ingest_rows_per_second']:.0f} vs {result['copy_rows_per_second']:.0f} "
            "rows/s, PostgreSQL", result.get("ingest_round_ratios", ())),
    ]  # fmt: skip


def _platform(result: dict[str, Any]) -> list[Row]:
    start, hops = result["cold_start"], result["hops"]
    return [
        Row("8", "cold start: embedded platform to all SERVING / bare grpc.aio server start",
            start["ratio"], None, None,
            f"{start['platform_seconds']:.1f} s vs {start['bare_seconds']:.2f} s",
            start["round_ratios"]),
        Row("18", "second start of `make run` to all SERVING (data migrated), seconds",
            start["second_start_seconds"], "<=", 3.0, "the same data folder started again",
            start["second_start_rounds"]),
        *_memory_rows(result["memory"]),
        Row("8", "two hops (client -> Project -> Billing) / one hop (client -> Billing), "
            "latency", hops["latency_ratio"], None, None,
            f"p50 {hops['two_hops_p50_ms']:.1f} vs {hops['one_hop_p50_ms']:.1f} ms, "
            "one call at a time", hops.get("latency_round_ratios", ())),
        Row("8", "same, throughput with 16 in flight", hops["throughput_ratio"], None, None,
            f"{hops['two_hops_rps']:.0f} vs {hops['one_hop_rps']:.0f} calls/s",
            hops.get("throughput_round_ratios", ())),
    ]  # fmt: skip


def _memory_rows(memory: dict[str, dict[str, dict[str, int]]]) -> list[Row]:
    """Issue 18's memory goals: the largest service's resident set, and the worker's."""
    services = {label: use for label, use in memory.items() if label != "notification-worker"}

    def largest(phase: str) -> tuple[float, str]:
        label = max(services, key=lambda name: services[name][phase].get("rss_kib", 0))
        return services[label][phase]["rss_kib"] / 1024, label

    rows = []
    for phase, goal in (("idle", 70.0), ("loaded", 85.0)):
        mib, label = largest(phase)
        measure = f"resident memory per service, {phase} (the largest), MiB"
        rows.append(Row("18", measure, mib, "<=", goal, label))
    worker = memory.get("notification-worker")
    if worker is not None:
        mib = worker["loaded"].get("rss_kib", worker["idle"]["rss_kib"]) / 1024
        measure = "resident memory of the Celery worker (all its processes), MiB"
        count = worker["idle"]["processes"]
        processes = f"{count} process{'es' if count > 1 else ''}, after delivering an email"
        rows.append(Row("18", measure, mib, "<=", 120.0, processes))
    return rows


def _login_flood(result: dict[str, Any]) -> list[Row]:
    timing = result["timing"]
    return [
        Row("16", "victim's Login during a login flood / idle (p50)", result["flood_ratio"],
            "<=", 2.0, f"{result['flood_p50_ms']:.0f} vs {result['idle_p50_ms']:.0f} ms, 64 "
            f"in flight from {result['attackers']} address(es), production Argon2 cost; Auth's "
            f"peak RSS {result['auth_peak_rss_mib']:.0f} MiB",
            result.get("round_ratios", ())),
        Row("16", "Login with a wrong password: unknown / registered email (larger p50 over "
            "smaller)", timing["ratio"], "<=", 1.1,
            f"{timing['unknown_p50_ms']:.0f} vs {timing['known_p50_ms']:.0f} ms"),
    ]  # fmt: skip


def _db_rpcs(result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    create = result.get("CreateProject")
    for name, figures in result.items():
        if name == "CreateProject":
            continue
        latency = figures["latency"]
        rows.append(
            Row(
                "18",
                f"{figures['label']} / bare grpc.aio, throughput (h2load 16x8)",
                figures["ratio"],
                ">=" if figures["goal"] else None,
                figures["goal"],
                f"{figures['service_rps']:.0f} vs {figures['bare_rps']:.0f} calls/s; server CPU "
                f"{figures['service_cpu_us_per_call']:.0f} vs "
                f"{figures['bare_cpu_us_per_call']:.0f} us/call",
                figures["round_ratios"],
            )
        )
        rows.append(
            Row(
                "18",
                f"{figures['label']}: capacity (bare CPU per call / service CPU per call)",
                figures["bare_cpu_us_per_call"] / figures["service_cpu_us_per_call"],
                None,
                None,
                "diagnostic: moves less than calls/s when others share the machine",
            )
        )
        offered = f"at {latency['offered_rps']:.0f} calls/s"
        rows.append(
            Row(
                "18",
                f"{figures['label']}: p99 at half the bare capacity / bare p99",
                latency.get("ratio", float("nan")),
                "<=",
                1.5,
                f"{latency['service_p99_ms']:.1f} vs {latency['bare_p99_ms']:.1f} ms {offered}"
                if "ratio" in latency
                else f"not measured: capacity below the offered load {offered}",
            )
        )
    if create is not None:
        rows.append(
            Row(
                "18",
                "Project CreateProject (new request id each call) / GetProject, Python harness",
                create["ratio"],
                ">=",
                0.2,
                f"{create['CreateProject_rps']:.0f} vs {create['GetProject_rps']:.0f} calls/s, "
                f"{create['in_flight']} in flight; CPU per create: Project "
                f"{create['CreateProject_project_cpu_us_per_call']:.0f} us, Billing "
                f"{create['CreateProject_billing_cpu_us_per_call']:.0f} us",
                create["round_ratios"],
            )
        )
    return rows


BENCHMARKS = (
    Benchmark("validate_token", "benchmarks/validate_token.py",
              ["--seconds", "3", "--rounds", "3", "--warmup", "1"],
              ["--seconds", "0.5", "--rounds", "1", "--warmup", "0.3", "--clients", "1",
               "--concurrency", "4"], _validate_token),
    Benchmark("interceptor_chain", "benchmarks/interceptor_chain.py",
              ["--seconds", "3", "--rounds", "7", "--latency-seconds", "4"],
              ["--seconds", "0.3", "--rounds", "1", "--concurrency", "4",
               "--latency-seconds", "0.3"], _interceptor_chain),
    Benchmark("chain_instructions", "benchmarks/chain_instructions.py",
              ["--calls", "2000"], ["--calls", "200"], _chain_instructions),
    Benchmark("typed_client", "benchmarks/typed_client.py",
              ["--seconds", "0.5", "--rounds", "12"],
              ["--seconds", "0.1", "--rounds", "2", "--concurrency", "4"], _typed_client),
    Benchmark("two_hop", "benchmarks/two_hop.py",
              ["--seconds", "1", "--rounds", "5"],
              ["--seconds", "0.3", "--rounds", "1", "--concurrency", "4"], _two_hop),
    Benchmark("ingest", "services/analytics/benchmarks/ingest.py",
              ["--seconds", "3", "--rounds", "5", "--events", "20000"],
              ["--seconds", "0.5", "--rounds", "1", "--clients", "1", "--concurrency", "4",
               "--events", "2000", "--ingest-rounds", "1"], _ingest),
    Benchmark("db_rpcs", "benchmarks/db_rpcs.py",
              ["--rounds", "3", "--seconds", "2", "--latency-seconds", "3",
               "--profile-seconds", "4"],
              ["--rounds", "1", "--seconds", "0.3", "--warmup-calls", "100",
               "--latency-seconds", "0.3", "--profile-seconds", "1"], _db_rpcs,
              timeout_seconds=900.0),
    Benchmark("platform", "benchmarks/platform_footprint.py",
              ["--start-rounds", "2", "--load-seconds", "8", "--hop-rounds", "6"],
              ["--start-rounds", "1", "--settle-seconds", "0.5", "--load-seconds", "1",
               "--hop-rounds", "1", "--hop-seconds", "0.3"], _platform),
    Benchmark("login_flood", "benchmarks/login_flood.py",
              ["--rounds", "3", "--victim-logins", "6", "--timing-samples", "30"],
              ["--rounds", "1", "--victim-logins", "2", "--timing-samples", "4",
               "--flood-lead-seconds", "0.2"], _login_flood),
)  # fmt: skip


@dataclass
class Outcome:
    benchmark: Benchmark
    seconds: float
    result: dict[str, Any] | None
    error: str | None = None
    exit_code: int = 0


def run_one(benchmark: Benchmark, quick: bool, folder: Path) -> Outcome:
    out = folder / f"{benchmark.name}.json"
    argv = [sys.executable, str(ROOT / benchmark.script),
            *(benchmark.quick if quick else benchmark.full), "--json", str(out)]  # fmt: skip
    print(f"== {benchmark.name}: {' '.join(argv[1:])}", flush=True)
    began = time.perf_counter()
    try:
        finished = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=benchmark.timeout_seconds,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        elapsed = time.perf_counter() - began
        return Outcome(benchmark, elapsed, None, f"timed out after {elapsed:.0f} s")
    elapsed = time.perf_counter() - began
    print(finished.stdout[-3000:], end="", flush=True)
    # A script may exit non-zero to say "goal missed" (typed_client does) yet have a result:
    # only a missing or unreadable result file is a failure.
    if not out.exists():
        tail = (finished.stderr or finished.stdout)[-2000:]
        print(tail, file=sys.stderr, flush=True)
        return Outcome(benchmark, elapsed, None, _failure_summary(tail), finished.returncode)
    try:
        return Outcome(benchmark, elapsed, json.loads(out.read_text()), None, finished.returncode)
    except json.JSONDecodeError as error:
        return Outcome(benchmark, elapsed, None, f"unreadable result: {error}")


def _failure_summary(text: str) -> str:
    """The exception a failed script ended with (and a gRPC error's details), in one line."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    raised = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
    if not raised:
        return lines[-1].strip()[:300] if lines else "no output"
    summary = lines[raised[-1]].strip()
    details = next((line.strip() for line in lines[raised[-1] :] if "details = " in line), "")
    return f"{summary} {details}".strip()[:300]


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def main(argv: Sequence[str] | None = None) -> int:
    names = [benchmark.name for benchmark in BENCHMARKS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny rounds: proves the harness")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(names)}")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    options = parser.parse_args(argv)
    chosen = names if not options.only else [name.strip() for name in options.only.split(",")]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    host = machine()  # before any load of ours: the load average others put on the machine
    began, ticks = time.perf_counter(), cpu_times()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-results-") as folder:
        for benchmark in BENCHMARKS:
            if benchmark.name in chosen:
                outcomes.append(run_one(benchmark, options.quick, Path(folder)))
    rows: list[Row] = []
    for outcome in outcomes:
        if outcome.result is None:
            continue
        try:
            rows += outcome.benchmark.extract(outcome.result)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
            # A script whose result no longer has the expected shape is a failure, not a row.
            outcome.error = f"unexpected result shape: {error!r}"
    host["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    host["cpu_steal"] = steal_share(ticks, cpu_times())
    document = render(
        host=host,
        outcomes=[(o.benchmark.name, o.seconds, o.error, o.result) for o in outcomes],
        rows=rows,
        quick=options.quick,
        total_seconds=time.perf_counter() - began,
    )
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(document)
    print(f"\nwrote {options.output}", flush=True)
    failed = [outcome.benchmark.name for outcome in outcomes if outcome.error]
    if failed:
        print(f"no result from: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
