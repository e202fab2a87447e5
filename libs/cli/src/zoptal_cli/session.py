"""What every command runs with: the global options, the clients, and who the call acts as.

A user acts with the access token ``zoptal login`` cached (refreshed here, under a lock, when it
is about to expire). An operator acts with a service token: ``--service-token`` /
``ZOPTAL_SERVICE_TOKEN`` as given, or issued now for the service account in
``--service-credentials`` / ``ZOPTAL_SERVICE_CREDENTIALS`` (a ``credentials.json``: client id and
secret). ``run`` turns a failed call into the status, its details and a hint on stderr, exit 1.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click
import grpc
from meshcore.client_manager import Metadata
from meshcore.errors import MeshError
from zoptal.clients.errors import ApiError
from zoptal.clients.service_identity import ServiceCredential

from zoptal_cli.endpoints import Clients, open_clients
from zoptal_cli.failures import Failure, failure_of
from zoptal_cli.login_cache import CachedLogin, LoginCache
from zoptal_cli.output import Output

__all__ = ["Session", "State", "bearer", "pass_state", "run"]

T = TypeVar("T")
REFRESH_MARGIN_SECONDS = 30.0

HINTS = {
    grpc.StatusCode.UNAVAILABLE: (
        "is the platform running there? Point at it with --addr SERVICE=HOST:PORT or <SVC>_ADDR"
    ),
    grpc.StatusCode.UNAUTHENTICATED: "log in again: zoptal login",
}


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass(frozen=True)
class State:
    """The global options, parsed."""

    output: Output
    addresses: dict[str, tuple[str, ...]]
    timeout: float
    cache: LoginCache
    service_token: str | None = None
    service_credentials: Path | None = None


pass_state = click.make_pass_decorator(State)
"""Hands a command the ``State`` the ``zoptal`` group made from the global options."""


class Session:
    def __init__(self, state: State, clients: Clients) -> None:
        self.state = state
        self.clients = clients
        self._service_token = state.service_token

    @property
    def has_operator(self) -> bool:
        return bool(self.state.service_token or self.state.service_credentials)

    async def login(self) -> CachedLogin:
        """The cached login, refreshed first when its access token is (nearly) expired."""
        cache = self.state.cache
        login = cache.load()
        if login is None:
            raise click.ClickException("not logged in: run `zoptal login` first")
        if login.access_expires_at - REFRESH_MARGIN_SECONDS > time.time():
            return login
        with cache.locked():
            login = cache.load()  # another command may have refreshed it meanwhile
            if login is None:
                raise click.ClickException("not logged in: run `zoptal login` first")
            if login.access_expires_at - REFRESH_MARGIN_SECONDS > time.time():
                return login
            if login.refresh_expires_at <= time.time():
                raise click.ClickException("the login has expired: run `zoptal login` again")
            reply = await self.clients.auth.refresh_token(login.refresh_token)
            login = CachedLogin(
                user_id=login.user_id,
                email=login.email,
                access_token=reply.access_token,
                access_expires_at=reply.access_token_expires_at.ToNanoseconds() / 1e9,
                refresh_token=reply.refresh_token,
                refresh_expires_at=reply.refresh_token_expires_at.ToNanoseconds() / 1e9,
            )
            cache.save(login)
        return login

    async def user_metadata(self) -> Metadata:
        return bearer((await self.login()).access_token)

    async def operator_metadata(self) -> Metadata:
        """The service token when one is configured, else the user's own token (enough for an
        admin user)."""
        if not self.has_operator:
            return await self.user_metadata()
        if self._service_token is None:
            assert self.state.service_credentials is not None
            try:
                credential = ServiceCredential.load(self.state.service_credentials)
            except ValueError as error:
                raise click.ClickException(str(error)) from None
            reply = await self.clients.auth.issue_service_token(
                credential.client_id, credential.client_secret
            )
            self._service_token = reply.access_token
        return (("x-service-token", self._service_token),)


def run(
    state: State,
    action: Callable[[Session], Awaitable[T]],
    *,
    hints: dict[grpc.StatusCode, str] | None = None,
) -> T:
    """Run ``action`` with open clients; a failed call is reported and exits 1."""

    async def main() -> T:
        async with open_clients(state.addresses, timeout_seconds=state.timeout) as clients:
            return await action(Session(state, clients))

    try:
        return asyncio.run(main())
    except (ApiError, MeshError) as error:
        code = error.code if isinstance(error, MeshError) else error.code()
        hint = {**HINTS, **(hints or {})}.get(code, "")
        report(state, failure_of(error, hint))
        raise SystemExit(1) from None


def report(state: State, failure: Failure) -> None:
    command = click.get_current_context().command_path
    if state.output == "json":
        document = {"error": {"command": command, **failure.as_dict()}}
        click.echo(json.dumps(document, indent=2, sort_keys=True), err=True)
        return
    first, *rest = failure.lines()
    click.echo(f"Error: {command}: {first}", err=True)
    for line in rest:
        click.echo(line, err=True)
