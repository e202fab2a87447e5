"""Options the ``zoptal`` command and ``zoptal-loadgen`` share, spelled once."""

from __future__ import annotations

import click

from zoptal_cli.endpoints import SERVICE_NAMES

__all__ = ["ADDRESSES", "OUTPUT", "TIMEOUT"]

ADDRESSES = click.option(
    "--addr",
    "addresses",
    multiple=True,
    metavar="SERVICE=HOST:PORT[,HOST:PORT]",
    help=f"Where a service is ({', '.join(SERVICE_NAMES)}); else <SVC>_ADDR, else make run's "
    "ports. Repeatable.",
)
TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(0.1, 300),
    default=10.0,
    show_default=True,
    help="Deadline of each call, in seconds.",
)
OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    envvar="ZOPTAL_OUTPUT",
    show_envvar=True,
    help="How results are written (errors too, on stderr).",
)
