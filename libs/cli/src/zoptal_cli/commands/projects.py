"""``zoptal projects list|create|get|members|delete``: ProjectService as the logged-in user."""

from __future__ import annotations

import uuid
from typing import Any

import click

from zoptal_cli.output import emit, message_data
from zoptal_cli.session import Session, State, pass_state, run

__all__ = ["projects"]

PAGE = click.option("--page", type=click.IntRange(1), default=1, show_default=True)
LIMIT = click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)


@click.group()
def projects() -> None:
    """Projects you own or belong to."""


@projects.command("list")
@click.option("--user", "user_id", default="", help="Another user's projects (admin).")
@PAGE
@LIMIT
@pass_state
def list_projects(state: State, user_id: str, page: int, limit: int) -> None:
    """The projects of a user (default: you), with your role in each."""

    async def action(session: Session) -> dict[str, Any]:
        reply = await session.clients.project.list_user_projects(
            user_id, page, limit, metadata=await session.user_metadata()
        )
        return message_data(reply)

    data = run(state, action)
    if state.output == "json":
        emit(data, state.output)
        return
    rows = [{**item["project"], "role": item["role"]} for item in data["projects"]]
    emit(rows, state.output, columns=["id", "name", "role", "member_count", "version"])
    click.echo(f"page {data['page']}, {data['total_count']} in all")


@projects.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option(
    "--request-id",
    default=None,
    help="Idempotency key: repeating a create with it returns the first project (default: new).",
)
@pass_state
def create_project(state: State, name: str, description: str, request_id: str | None) -> None:
    """Create a project owned by you (counted against your plan's project limit)."""

    async def action(session: Session) -> dict[str, Any]:
        reply = await session.clients.project.create_project(
            name,
            description,
            request_id=request_id or uuid.uuid4().hex,
            metadata=await session.user_metadata(),
        )
        return message_data(reply.project)

    emit(run(state, action), state.output)


@projects.command("get")
@click.argument("project_id")
@pass_state
def get_project(state: State, project_id: str) -> None:
    """One project, with your role in it."""

    async def action(session: Session) -> dict[str, Any]:
        reply = await session.clients.project.get_project(
            project_id, metadata=await session.user_metadata()
        )
        return {**message_data(reply.project), "caller_role": message_data(reply)["caller_role"]}

    emit(run(state, action), state.output)


@projects.command("members")
@click.argument("project_id")
@PAGE
@LIMIT
@pass_state
def members(state: State, project_id: str, page: int, limit: int) -> None:
    """The members of a project and their roles."""

    async def action(session: Session) -> dict[str, Any]:
        reply = await session.clients.project.list_project_members(
            project_id, page, limit, metadata=await session.user_metadata()
        )
        return message_data(reply)

    data = run(state, action)
    if state.output == "json":
        emit(data, state.output)
        return
    emit(data["members"], state.output, columns=["user_id", "role", "joined_at"])


@projects.command("delete")
@click.argument("project_id")
@click.option(
    "--version", type=click.IntRange(0), default=0, help="Only if still at this version (0: any)."
)
@pass_state
def delete_project(state: State, project_id: str, version: int) -> None:
    """Delete a project you own."""

    async def action(session: Session) -> None:
        await session.clients.project.delete_project(
            project_id, version, metadata=await session.user_metadata()
        )

    run(state, action)
    emit({"deleted": project_id}, state.output)
