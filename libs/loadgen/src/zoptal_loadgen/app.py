"""``zoptal-loadgen`` / ``python -m zoptal_loadgen``: options, the run, the verdict.

Exit codes: 0 when the success rate reached ``--min-success`` (and at least one call was made),
1 below it, 2 for bad options. The report goes to stdout (``--output json`` for machines);
interim reports of a long run (``--report-every``) are one JSON line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
from pathlib import Path
from typing import Any

import click
from meshcore.errors import Unauthenticated
from meshcore.service_token import IssuedServiceToken, ServiceTokenSource
from zoptal.clients.service_identity import ServiceCredential
from zoptal_cli.endpoints import Clients, open_clients, resolve_addresses
from zoptal_cli.options import ADDRESSES, OUTPUT, TIMEOUT
from zoptal_cli.output import emit

from zoptal_loadgen.journeys import JOURNEYS, Journeys
from zoptal_loadgen.runner import Schedule, run_schedule
from zoptal_loadgen.stats import Recorder
from zoptal_loadgen.users import UserPool

__all__ = ["main", "parse_mix"]

DEFAULT_MIX = "browse=4,project=2,events=3,session=1,operator=1"
OPERATOR_READY_SECONDS = 10.0


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for item in text.split(","):
        name, sep, weight = item.strip().partition("=")
        if not sep or name not in JOURNEYS:
            raise click.BadParameter(
                f"{item!r}: expected NAME=WEIGHT with NAME one of {', '.join(JOURNEYS)}",
                param_hint="--mix",
            )
        try:
            mix[name] = float(weight)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: the weight is not a number", param_hint="--mix"
            ) from None
        if not 0 <= mix[name] < math.inf:  # also refuses nan
            raise click.BadParameter(
                f"{item!r}: a weight is a finite number, 0 or more", param_hint="--mix"
            )
    if not any(mix.values()):
        raise click.BadParameter("at least one journey needs a weight above 0", param_hint="--mix")
    return mix


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--rate",
    type=click.FloatRange(0.01, 10_000),
    default=2.0,
    show_default=True,
    help="Journeys started per second (each makes 3 to 8 calls).",
)
@click.option(
    "--duration",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds to run; 0 runs until SIGTERM or Ctrl-C.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="Journeys in flight at most; arrivals beyond it are skipped and counted.",
)
@click.option(
    "--mix",
    default=DEFAULT_MIX,
    show_default=True,
    help="Journey weights. operator needs --service-credentials (else it is left out).",
)
@click.option(
    "--users",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="Size of the user pool (registered on first use, reused, signed out at the end).",
)
@click.option(
    "--min-success",
    type=click.FloatRange(0, 1),
    default=0.99,
    show_default=True,
    help="Exit 1 when the share of successful calls is below this.",
)
@click.option(
    "--service-credentials",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ZOPTAL_SERVICE_CREDENTIALS",
    show_envvar=True,
    help="credentials.json of a service account with analytics:read and "
    "notification:send, for the operator journey.",
)
@click.option(
    "--email-domain",
    default="example.com",
    show_default=True,
    help="Domain of the generated users' addresses (the operator journey mails them).",
)
@click.option(
    "--report-every",
    type=click.FloatRange(0),
    default=0.0,
    help="Seconds between interim JSON reports (each covers its interval); 0: none.",
)
@ADDRESSES
@TIMEOUT
@OUTPUT
def cli(**options: Any) -> None:
    """Walk user journeys across the five services at a set rate; report success and latency
    per RPC; exit 1 below --min-success."""  # fmt: skip
    mix = parse_mix(options["mix"])
    if options["service_credentials"] is None:
        mix.pop("operator", None)
        if not any(mix.values()):
            raise click.BadParameter(
                "the operator journey needs --service-credentials", param_hint="--mix"
            )
    try:
        addresses = resolve_addresses(options["addresses"])
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    schedule = Schedule(
        rate=options["rate"],
        duration=options["duration"],
        concurrency=options["concurrency"],
        mix=mix,
        report_every=options["report_every"],
    )
    report = asyncio.run(_run(addresses, schedule, options))
    report["min_success"] = options["min_success"]
    overall = report["overall"]
    passed = bool(overall["calls"]) and overall["success_rate"] >= options["min_success"]
    report["passed"] = passed
    _print(report, options["output"])
    raise SystemExit(0 if passed else 1)


async def _run(
    addresses: dict[str, tuple[str, ...]], schedule: Schedule, options: dict[str, Any]
) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with open_clients(
        addresses, timeout_seconds=options["timeout"], health_checks=True
    ) as clients:
        operator = _operator_tokens(clients, options["service_credentials"])
        if operator is not None:
            operator.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(operator.wait_ready(), OPERATOR_READY_SECONDS)
        pool = UserPool(options["users"], email_domain=options["email_domain"])
        journeys = Journeys(clients, pool, Recorder(), operator=operator)
        try:
            return await run_schedule(
                journeys,
                schedule,
                stop,
                on_interim=lambda interim: click.echo(json.dumps({"interim": interim})),
            )
        finally:
            if operator is not None:
                await operator.stop()


def _operator_tokens(clients: Clients, path: Path | None) -> ServiceTokenSource | None:
    """The operator's service token, issued for its credential and renewed before expiry."""
    if path is None:
        return None

    async def fetch() -> IssuedServiceToken:
        try:
            credential = ServiceCredential.load(path)
        except ValueError as error:
            raise Unauthenticated(str(error)) from None
        reply = await clients.auth.issue_service_token(
            credential.client_id, credential.client_secret
        )
        return IssuedServiceToken(reply.access_token, reply.expires_at.ToNanoseconds() / 1e9)

    return ServiceTokenSource(fetch)


def _print(report: dict[str, Any], output: str) -> None:
    if output == "json":
        emit(report, "json")
        return
    rows = [{"rpc": rpc, **summary} for rpc, summary in report["rpcs"].items()]
    rows.append({"rpc": "(overall)", **report["overall"]})
    for row in rows:
        row["failures"] = ", ".join(f"{k}={v}" for k, v in row.get("failures", {}).items())
    columns = ["rpc", "calls", "failed", "success_rate", "p50_ms", "p90_ms", "p99_ms", "failures"]
    emit(rows, "table", columns=columns)
    journeys = ", ".join(
        f"{name} {counts.get('ok', 0)} ok/{counts.get('failed', 0)} failed"
        for name, counts in report["journeys"].items()
    )
    click.echo(f"journeys: {journeys or 'none'}")
    for label, message in report["overall"].get("failure_examples", {}).items():
        click.echo(f"failure {label}: {message}")
    if report["skipped"]:
        click.echo(f"skipped: {', '.join(f'{k}={v}' for k, v in report['skipped'].items())}")
    verdict = "PASS" if report["passed"] else "FAIL"
    click.echo(
        f"{verdict}: success rate {report['overall']['success_rate']} "
        f"(minimum {report['min_success']}) over {report['elapsed_seconds']} s, "
        f"{report['calls_per_second']} calls/s"
    )


def main() -> None:
    cli(prog_name="zoptal-loadgen")
    sys.exit(0)  # pragma: no cover - cli() always raises SystemExit
