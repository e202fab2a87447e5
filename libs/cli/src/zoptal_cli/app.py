"""The ``zoptal`` command: global options, then one group per service area.

Built on Click: it parses, documents (``--help`` on every command) and completes arguments in
bash, zsh and fish (``zoptal completion SHELL`` prints the script), and the workspace already
locks it (Celery's command line uses it), so the CLI needs no other parsing library.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import click
from click.shell_completion import get_completion_class

from zoptal_cli.commands import billing, events, notify, projects
from zoptal_cli.endpoints import resolve_addresses
from zoptal_cli.health import check_all
from zoptal_cli.login_cache import CachedLogin, LoginCache, config_dir
from zoptal_cli.options import ADDRESSES, OUTPUT, TIMEOUT
from zoptal_cli.output import emit, message_data
from zoptal_cli.session import Session, State, bearer, pass_state, run
from zoptal_cli.tokens import decode_unverified

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@OUTPUT
@ADDRESSES
@TIMEOUT
@click.option(
    "--service-token",
    envvar="ZOPTAL_SERVICE_TOKEN",
    show_envvar=True,
    help="Operator commands (notify send, events query) act with this service token; prefer "
    "the variable, which no process listing shows.",
)
@click.option(
    "--service-credentials",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="ZOPTAL_SERVICE_CREDENTIALS",
    show_envvar=True,
    help="Or a service account's credentials.json, exchanged for a service token.",
)
@click.version_option(package_name="zoptal-cli")
@click.pass_context
def cli(
    ctx: click.Context,
    output: str,
    addresses: tuple[str, ...],
    timeout: float,
    service_token: str | None,
    service_credentials: Path | None,
) -> None:
    """Use the Zoptal platform: log in, manage projects, read billing, send notifications,
    track and query events, check health."""
    try:
        resolved = resolve_addresses(addresses)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    ctx.obj = State(
        output="json" if output == "json" else "table",
        addresses=resolved,
        timeout=timeout,
        cache=LoginCache(config_dir()),
        service_token=service_token or None,
        service_credentials=service_credentials,
    )


@cli.command()
@click.option("--email", prompt=True, help="The account's email.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from stdin (for scripts) instead of prompting.",
)
@pass_state
def login(state: State, email: str, password_stdin: bool) -> None:
    """Log in and cache the tokens in the config dir (token.json, mode 0600)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True)

    async def action(session: Session) -> CachedLogin:
        reply = await session.clients.auth.login(email, password)
        cached = CachedLogin(
            user_id=reply.user.id,
            email=reply.user.email,
            access_token=reply.access_token,
            access_expires_at=reply.access_token_expires_at.ToNanoseconds() / 1e9,
            refresh_token=reply.refresh_token,
            refresh_expires_at=reply.refresh_token_expires_at.ToNanoseconds() / 1e9,
        )
        state.cache.save(cached)
        return cached

    cached = run(state, action)
    emit(
        {
            "user_id": cached.user_id,
            "email": cached.email,
            "access_expires_at": _iso(cached.access_expires_at),
            "token_file": str(state.cache.path),
        },
        state.output,
    )


@cli.command()
@click.option("--local", is_flag=True, help="Only forget the cached tokens; revoke nothing.")
@pass_state
def logout(state: State, local: bool) -> None:
    """Revoke the cached login at Auth (its whole refresh family) and forget it."""
    cached = state.cache.load()
    if cached is not None and not local:

        async def action(session: Session) -> None:
            await session.clients.auth.revoke_token(
                cached.refresh_token, metadata=bearer(cached.access_token)
            )

        run(state, action)
    emit({"logged_out": state.cache.forget()}, state.output)


@cli.command()
@pass_state
def whoami(state: State) -> None:
    """Who the cached token belongs to, as Auth sees it (ValidateToken)."""

    async def action(session: Session) -> dict[str, Any]:
        login = await session.login()
        reply = await session.clients.auth.validate_token(
            login.access_token, metadata=bearer(login.access_token)
        )
        return message_data(reply)

    emit(run(state, action), state.output)


@cli.command()
@pass_state
def health(state: State) -> None:
    """grpc.health.v1 of every replica of every service; exit 1 unless all are SERVING."""
    rows = asyncio.run(check_all(state.addresses, state.timeout))
    emit(rows, state.output, columns=["service", "address", "status", "latency_ms", "detail"])
    if any(row["status"] != "SERVING" for row in rows):
        raise SystemExit(1)


@cli.group()
def token() -> None:
    """Inspect tokens."""


@token.command("decode")
@click.argument("value", required=False, metavar="[TOKEN|-]")
@pass_state
def token_decode(state: State, value: str | None) -> None:
    """Show a JWT's header and claims WITHOUT verifying it (`zoptal whoami` asks Auth).

    TOKEN defaults to the cached access token; `-` reads it from stdin."""
    if value == "-":
        value = sys.stdin.read().strip()
    elif value is None:
        cached = state.cache.load()
        if cached is None:
            raise click.UsageError("give a TOKEN (or `-` for stdin), or run `zoptal login`")
        value = cached.access_token
    try:
        decoded = decode_unverified(value)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    emit(decoded, state.output)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script, e.g. `eval "$(zoptal completion bash)"`."""
    completer = get_completion_class(shell)
    assert completer is not None  # the choice above lists only the shells Click supports
    click.echo(completer(cli, {}, "zoptal", "_ZOPTAL_COMPLETE").source())


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


for _group in (projects.projects, billing.billing, notify.notify, events.events):
    cli.add_command(_group)


def main() -> None:
    cli(prog_name="zoptal")
