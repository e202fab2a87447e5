"""``zoptal events track|query``: AnalyticsService.

Tracking is for any logged-in user, for their own events. Querying aggregates everyone's events,
so it is an operator's read: GetAnalytics requires ``analytics:read`` on a service token, or an
admin user.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import click
import grpc
from zoptal.analytics.v1 import analytics_pb2

from zoptal_cli.output import emit, message_data
from zoptal_cli.session import Session, State, pass_state, run

__all__ = ["events"]

BUCKETS = {
    "minute": analytics_pb2.BUCKET_SIZE_MINUTE,
    "hour": analytics_pb2.BUCKET_SIZE_HOUR,
    "day": analytics_pb2.BUCKET_SIZE_DAY,
}
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class Since(click.ParamType[dt.timedelta]):
    """A span back from now: ``30m``, ``6h``, ``7d``."""

    name = "SPAN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.timedelta):
            return value
        found = re.fullmatch(r"(\d{1,4})([mhd])", str(value).strip())
        if found is None:
            self.fail(f"{value!r}: expected a number and m, h or d (30m, 6h, 7d)", param, ctx)
        return dt.timedelta(**{UNITS[found.group(2)]: int(found.group(1))})


def _property(value: str) -> tuple[str, str]:
    key, sep, item = value.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{value!r}: expected KEY=VALUE", param_hint="--property")
    return key, item


@click.group()
def events() -> None:
    """Track your events; query everyone's (operators)."""


@events.command()
@click.argument("name")
@click.option("-p", "--property", "properties", multiple=True, metavar="KEY=VALUE")
@click.option(
    "--event-id", default=None, help="Makes a repeat harmless: one event per id (default: new)."
)
@pass_state
def track(state: State, name: str, properties: tuple[str, ...], event_id: str | None) -> None:
    """Record one event of yours."""
    pairs = dict(_property(item) for item in properties)

    async def action(session: Session) -> dict[str, Any]:
        login = await session.login()
        reply = await session.clients.analytics.track_event(
            name,
            user_id=login.user_id,
            properties=pairs,
            event_id=event_id or uuid.uuid4().hex,
            metadata=await session.user_metadata(),
        )
        return message_data(reply)

    emit(run(state, action), state.output)


@events.command()
@click.option("--since", type=Since(), default="1h", show_default=True, help="How far back.")
@click.option("--bucket", type=click.Choice(sorted(BUCKETS)), default="hour", show_default=True)
@click.option("--event", "event_names", multiple=True, help="Only these event names.")
@click.option("--user", "user_id", default="", help="Only this user's events.")
@click.option("--top", type=click.IntRange(0, 100), default=10, show_default=True)
@pass_state
def query(
    state: State,
    since: dt.timedelta,
    bucket: str,
    event_names: tuple[str, ...],
    user_id: str,
    top: int,
) -> None:
    """Counts, unique users, top events and pages over a span (needs analytics:read)."""
    end = dt.datetime.now(dt.UTC)

    async def action(session: Session) -> dict[str, Any]:
        reply = await session.clients.analytics.get_analytics(
            end - since,
            end,
            bucket=BUCKETS[bucket],
            event_names=event_names,
            user_id=user_id,
            top_limit=top,
            metadata=await session.operator_metadata(),
        )
        return message_data(reply)

    hints = {
        grpc.StatusCode.PERMISSION_DENIED: (
            "querying needs a service token with analytics:read, or an admin user: set "
            "ZOPTAL_SERVICE_TOKEN or --service-credentials"
        )
    }
    data = run(state, action, hints=hints)
    if state.output == "json":
        emit(data, state.output)
        return
    emit(
        {
            "total_events": data["total_events"],
            "unique_users": data["unique_users"],
            "top_events": ", ".join(f"{e['name']}={e['count']}" for e in data["top_events"]),
            "top_pages": ", ".join(f"{p['url']}={p['views']}" for p in data["top_pages"]),
        },
        state.output,
    )
