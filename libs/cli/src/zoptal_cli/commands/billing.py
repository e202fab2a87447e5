"""``zoptal billing plans|subscription|usage``: BillingService, read as the logged-in user."""

from __future__ import annotations

from typing import Any

import click

from zoptal_cli.output import emit, message_data
from zoptal_cli.session import Session, State, pass_state, run

__all__ = ["billing"]

USER = click.option("--user", "user_id", default="", help="Another user (admin; default: you).")


@click.group()
def billing() -> None:
    """Plans, your subscription and what you have used of it."""


@billing.command()
@pass_state
def plans(state: State) -> None:
    """The plans on offer, with their limits."""

    async def action(session: Session) -> list[dict[str, Any]]:
        reply = await session.clients.billing.get_subscription_plans(
            metadata=await session.user_metadata()
        )
        return [message_data(plan) for plan in reply.plans]

    data = run(state, action)
    if state.output == "json":
        emit(data, state.output)
        return
    rows = [
        {
            **plan,
            "price": f"{int(plan['price_minor_units']) / 100:.2f} {plan['currency']}".strip(),
            "limits": ", ".join(
                f"{limit['metric'].removeprefix('METRIC_').lower()}="
                + ("unlimited" if limit["unlimited"] else str(limit["limit"]))
                for limit in plan["limits"]
            ),
        }
        for plan in data
    ]
    emit(rows, state.output, columns=["id", "name", "price", "interval", "limits"])


async def _subscription(session: Session, user_id: str) -> dict[str, Any]:
    login_user = user_id or (await session.login()).user_id
    reply = await session.clients.billing.get_user_subscription(
        login_user, metadata=await session.user_metadata()
    )
    return message_data(reply)


@billing.command()
@USER
@pass_state
def subscription(state: State, user_id: str) -> None:
    """Your plan, its period and the latest plan change."""

    async def action(session: Session) -> dict[str, Any]:
        data = await _subscription(session, user_id)
        subscribed: dict[str, Any] = data["subscription"]
        return subscribed

    data = run(state, action)
    if state.output == "table":
        data = {**data, "plan": data["plan"]["id"]}
    emit(data, state.output)


@billing.command()
@USER
@pass_state
def usage(state: State, user_id: str) -> None:
    """What you have used of each metered limit in this period."""

    async def action(session: Session) -> list[dict[str, Any]]:
        usage: list[dict[str, Any]] = (await _subscription(session, user_id))["usage"]
        return usage

    emit(
        run(state, action),
        state.output,
        columns=["metric", "scope_id", "used", "limit", "unlimited", "period_end"],
    )
