"""The Auth server over a real gRPC channel, on SQLite and on the real PostgreSQL.

Every test that takes ``auth`` runs twice: once against a SQLite file and once against a fresh
PostgreSQL database (the ``postgres_url`` fixture of tests/conftest.py). The server runs the
production interceptor chain, migrations are applied with Alembic, and the JWKS HTTP endpoint
listens on a free port.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.migrations import upgrade_database
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal_auth.app import MIGRATIONS_DIR, AuthApp, build_app
from zoptal_auth.settings import AuthSettings

from tests.mesh import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, auth_settings, serving_auth


@dataclass
class AuthUnderTest:
    app: AuthApp
    stub: Any  # auth_pb2_grpc.AuthServiceStub on an aio channel
    channel: grpc.aio.Channel
    jwks_url: str
    admin_token: str

    @staticmethod
    def bearer(token: str) -> Sequence[tuple[str, str]]:
        return (("authorization", f"Bearer {token}"),)

    async def register_and_login(
        self, email: str = "alice@example.com", password: str = PASSWORD
    ) -> auth_pb2.LoginResponse:
        await self.stub.RegisterUser(auth_pb2.RegisterUserRequest(email=email, password=password))
        return await self.stub.Login(auth_pb2.LoginRequest(email=email, password=password))


@contextlib.asynccontextmanager
async def running_auth(
    settings: AuthSettings,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[AuthUnderTest]:
    await upgrade_database(settings.database_url, MIGRATIONS_DIR)
    app = await build_app(settings, clock=clock)
    port = await app.jwks_http.start()
    async with serving_auth(app, interceptors) as server:
        stub = auth_pb2_grpc.AuthServiceStub(server.channel)
        admin = await stub.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
        yield AuthUnderTest(
            app=app,
            stub=stub,
            channel=server.channel,
            jwks_url=f"http://127.0.0.1:{port}/.well-known/jwks.json",
            admin_token=admin.access_token,
        )


@pytest.fixture
async def auth(tmp_path: Path, sqlite_or_postgres_url: str) -> AsyncIterator[AuthUnderTest]:
    async with running_auth(auth_settings(tmp_path, sqlite_or_postgres_url)) as running:
        yield running
