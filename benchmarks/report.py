"""The Markdown page ``run_all.py`` writes (``docs/benchmarks.md``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# (name, seconds it took, error or None, its JSON result or None)
Outcome = tuple[str, float, str | None, dict[str, Any] | None]


@dataclass(frozen=True)
class Row:
    issue: str
    measure: str
    value: float
    op: str | None  # ">=" or "<=" when the issue sets a goal
    goal: float | None
    detail: str = ""
    rounds: Sequence[float] = ()
    """The per-round ratios the median came from, when the script reports them."""

    @property
    def spread(self) -> str:
        if len(self.rounds) < 2:
            return "-"
        return f"{min(self.rounds):.2f}-{max(self.rounds):.2f} ({len(self.rounds)})"

    @property
    def verdict(self) -> str:
        if self.op is None or self.goal is None:
            return "info"
        met = self.value >= self.goal if self.op == ">=" else self.value <= self.goal
        return "PASS" if met else "MISS"

    @property
    def goal_text(self) -> str:
        return "no goal set" if self.op is None else f"{self.op} {self.goal:g}"


def render(
    *,
    host: dict[str, Any],
    outcomes: Sequence[Outcome],
    rows: Sequence[Row],
    quick: bool,
    total_seconds: float,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `uv run python benchmarks/run_all.py` (`make bench`); do not edit by hand, "
        "run it again.",
        "",
    ]
    if quick:
        lines += ["**Smoke run (`--quick`): rounds are tiny, the figures mean nothing.**", ""]
    lines += _machine(host, total_seconds)
    lines += _how_to_read()
    lines += ["## Goals", "",
              "| issue | measure | goal | measured | verdict | rounds: min-max (n) | detail |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| {row.issue} | {row.measure} | {row.goal_text} | {_figure(row.value)} | {row.verdict} | "
        f"{row.spread} | {row.detail} |"
        for row in rows
    ]
    failed = [(name, error) for name, _, error, _ in outcomes if error]
    for name, error in failed:
        lines.append(f"| | {name} | | | ERROR | | no result: {error} |")
    lines.append("")
    db_rpcs = next((result for name, _, _, result in outcomes if name == "db_rpcs" and result),
                   None)  # fmt: skip
    if db_rpcs is not None:
        lines += _db_rpc_notes(db_rpcs)
    lines += _platform_notes()
    lines += _login_flood_notes()
    platform = next((result for name, _, _, result in outcomes if name == "platform" and result),
                    None)  # fmt: skip
    if platform is not None:
        lines += _memory(platform)
    lines += ["## Runs", "", "| benchmark | seconds | result |", "|---|---|---|"]
    lines += [
        f"| {name} | {seconds:.0f} | {'ERROR: ' + error if error else 'ok'} |"
        for name, seconds, error, _ in outcomes
    ]
    lines.append("")
    return "\n".join(lines)


def _figure(value: float) -> str:
    """A ratio, or "-" for one that could not be measured (NaN: its row's detail says why)."""
    return "-" if math.isnan(value) else f"{value:.2f}"


def _machine(host: dict[str, Any], total_seconds: float) -> list[str]:
    load = ", ".join(f"{value:.2f}" for value in host["load_average"])
    return [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| date | {host['date']} |",
        f"| CPU | {host['cpu']} |",
        f"| cores | {host['cores']} |",
        f"| Python | {host['python']} |",
        f"| grpcio / protobuf / uvloop | {host['grpcio']} / {host['protobuf']} / "
        f"{host['uvloop']} |",
        f"| kernel | {host['kernel']} |",
        f"| load average at start (1, 5, 15 min) | {load} |",
        f"| load average at end | {_loads(host.get('load_average_end'))} |",
        f"| CPU time stolen by the hypervisor during the run | {_share(host.get('cpu_steal'))} |",
        f"| whole run | {total_seconds / 60:.1f} min |",
        "",
    ]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _loads(values: Sequence[float] | None) -> str:
    return ", ".join(f"{value:.2f}" for value in values) if values else "-"


def _how_to_read() -> list[str]:
    return [
        "## How to read this",
        "",
        "- Each ratio compares two variants run in the same process tree, in short slices that "
        "alternate over several rounds; the figure is the median of the per-round ratios, so "
        "background load hits both sides alike. Absolute rates (in *detail*) depend on the "
        "machine and on whatever else it was doing; the ratios are what carries over.",
        "- Every reply is checked (status OK and the expected content). A benchmark with a "
        "failed reply has no figure: it shows as ERROR.",
        "- A load average well above the core count means other work shared the CPU: ratios "
        "still pair like with like, but one side of a round can be hit much harder than the "
        "other, and figures move by tens of percent from run to run (see *rounds*).",
        "- CPU steal is time the host gave this virtual machine's CPUs to other guests, which "
        "no load average shows; a few percent, arriving in bursts, is enough to swing single "
        "rounds (and p99 latencies) by a factor of two.",
        "- *rounds* gives the lowest and highest per-round ratio behind the median, where the "
        "script reports them: a wide range means a noisy machine, and a verdict whose goal lies "
        "inside the range is not settled by this run.",
        "- *info* rows have no goal in the issues; they are recorded so a change shows.",
        "",
    ]


def _db_rpc_notes(result: dict[str, Any]) -> list[str]:
    lines = [
        "Issue 18 rows (`benchmarks/db_rpcs.py`):",
        "",
        "- The embedded platform on PostgreSQL and Redis (every service its own process, the "
        "production interceptor chain, a real user's token from Auth) against a bare `grpc.aio` "
        "echo server on uvloop, both driven by h2load (16 connections x 8 streams) with the same "
        "request, in alternating phases. h2load counts gRPC errors as successes, so a real "
        "client checks a reply before and after, and the service's own "
        "`grpc_server_handled_total` must count every call of a phase as OK.",
        "- *Server CPU per call* is the serving process's CPU time over a phase divided by its "
        "calls (PostgreSQL's and Redis's own CPU not included). On a shared machine it moves "
        "less than calls/s: the bare figure over the service's is the capacity ratio when the "
        "server, not the machine, is the bottleneck.",
        "- *p99 at half the bare capacity*: h2load's timing script sends at a constant rate "
        "(half the bare server's calls/s of this run) to each side; not measured when the "
        "service's capacity is below that rate (its queue would only grow).",
        "- *CreateProject*: a new request id and a new owner each call (the bootstrap admin "
        "creates for others, so no plan limit is reached), through real Python gRPC clients "
        "(2 processes x 8 in flight), against GetProject in the same harness. Each create also "
        "calls Billing twice and queues one usage row that the outbox delivers to Billing.",
        "",
        "Where the serving process's busy time goes (py-spy, own time by package of the "
        "innermost Python frame; *stdlib* includes the event loop and gRPC's C core reached "
        "from it):",
        "",
        "| RPC | own time by package (%) | inclusive (%) |",
        "|---|---|---|",
    ]
    for name, figures in result.items():
        profiles = [(name, figures.get("profile") or {})]
        if "billing_profile" in figures:  # CreateProject: its Billing calls are half its CPU
            profiles.append((f"{name} (in Billing)", figures["billing_profile"]))
        for label, profile in profiles:
            own = ", ".join(f"{package} {share:.0f}" for package, share in profile.get("own", []))
            inclusive = ", ".join(f"{package} {share:.0f}" for package, share in
                                  profile.get("inclusive", []))  # fmt: skip
            lines.append(f"| {label} | {own or '-'} | {inclusive or '-'} |")
    lines.append("")
    return lines


def _platform_notes() -> list[str]:
    return [
        "Issue 8 rows (`benchmarks/platform_footprint.py`):",
        "",
        "- *Cold start*: `python -m zoptal_platform run` with a fresh `ZOPTAL_DATA_DIR` and a free "
        "`ZOPTAL_PORT_OFFSET`, from spawn to its SERVING banner: five migrations (a process "
        "each), Auth's key generation, five services, the Celery worker and the health polling, "
        "against spawn-to-started of a bare `grpc.aio` server process (with health). Mostly "
        "Python start-up and imports, a dozen processes on the machine's cores.",
        "- *Two hops / one hop*: Billing's CheckSubscriptionLimits called by a user directly, "
        "against the same check made through a relay built from Project's settings, Project's "
        "server interceptor chain and Project's Billing gateway (typed client, service token, "
        "deadline), all against the running embedded platform (SQLite). A ratio of 2 would mean "
        "the hop costs as much as the callee.",
        "",
    ]


def _login_flood_notes() -> list[str]:
    return [
        "Issue 16 rows (`benchmarks/login_flood.py`):",
        "",
        "- *Login flood*: the real Auth process (production Argon2id cost, default hashing pool "
        "and login throttle, `TRUSTED_PROXY_HOPS=1`) while an attacker process keeps 64 bogus "
        "logins in flight from one address, replacing each as soon as it is answered; a "
        "registered user logs in from another address, one login after the other (a "
        "RESOURCE_EXHAUSTED is retried after its RetryInfo delay). Each round pairs idle "
        "logins with logins during the flood.",
        "- *Unknown / registered email*: wrong-password logins alternating between unknown "
        "and registered emails, each from a fresh address (no throttle involved).",
        "",
    ]


def _memory(platform: dict[str, Any]) -> list[str]:
    lines = [
        "## Memory per service (embedded platform, resident set)",
        "",
        "Idle: a few seconds after the platform printed SERVING. Loaded: right after calls to "
        "all five services at once (ValidateToken; GetProject + ListUserProjects; "
        "GetUserSubscription; GetNotificationHistory; TrackEvent) and the delivery of one "
        "email by the Celery worker (a plan-limit notice). Peak is the process's high-water "
        "mark. A row of several processes sums them. RSS counts shared library pages in every "
        "process, so the column's sum overstates the total.",
        "",
        "| process | idle RSS (MiB) | loaded RSS (MiB) | peak RSS (MiB) | calls under load |",
        "|---|---|---|---|---|",
    ]
    calls = platform.get("load_calls", {})
    for label, figures in platform["memory"].items():
        idle, loaded = figures["idle"], figures.get("loaded") or {}
        lines.append(
            f"| {label} | {idle['rss_kib'] / 1024:.0f} | "
            f"{loaded.get('rss_kib', 0) / 1024:.0f} | {loaded.get('peak_kib', 0) / 1024:.0f} | "
            f"{calls.get(label, '-')} |"
        )
    lines.append("")
    return lines
