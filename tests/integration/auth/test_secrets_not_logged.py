"""No password, token or client secret reaches the logs, even with verbose request logging."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from meshcore.interceptors.chain import AuthOptions, LoggingOptions, build_server_chain
from zoptal.auth.v1 import auth_pb2
from zoptal_auth.app import PUBLIC_METHODS
from zoptal_auth.keys import load_key_ring

from tests.mesh import ADMIN_PASSWORD, PASSWORD, auth_settings

from .conftest import running_auth


async def test_a_full_journey_logs_no_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Every log record of a journey (DEBUG, requests and responses logged) is free of secrets."""
    settings = auth_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [PASSWORD, ADMIN_PASSWORD]
    verbose = build_server_chain(
        settings,
        auth=AuthOptions(
            key_source=load_key_ring(settings).verification_keys(),
            excluded_methods=PUBLIC_METHODS,
        ),
        logging=LoggingOptions(log_level="DEBUG", log_requests=True, log_responses=True),
    )
    async with running_auth(settings, interceptors=verbose) as auth:
        caplog.clear()
        login = await auth.register_and_login()
        secrets += [login.access_token, login.refresh_token]
        refreshed = await auth.stub.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
        )
        secrets += [refreshed.access_token, refreshed.refresh_token]
        with pytest.raises(grpc.aio.AioRpcError):  # reuse: logged as a warning, token-free
            await auth.stub.RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
            )
        with pytest.raises(grpc.aio.AioRpcError):
            await auth.stub.Login(
                auth_pb2.LoginRequest(email="alice@example.com", password="a wrong password!")
            )
        secrets.append("a wrong password!")
        await auth.stub.ValidateToken(
            auth_pb2.ValidateTokenRequest(token=login.access_token),
            metadata=auth.bearer(auth.admin_token),
        )
        created = await auth.stub.CreateServiceAccount(
            auth_pb2.CreateServiceAccountRequest(name="mailer-service"),
            metadata=auth.bearer(auth.admin_token),
        )
        issued = await auth.stub.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(
                client_id=created.service_account.client_id, client_secret=created.client_secret
            )
        )
        secrets += [auth.admin_token, created.client_secret, issued.access_token]
        await auth.stub.RevokeToken(
            auth_pb2.RevokeTokenRequest(token=issued.access_token),
            metadata=(("x-service-token", issued.access_token),),
        )

    logged = "\n".join(
        record.getMessage() + " " + repr(record.__dict__) for record in caplog.records
    )
    assert "ValidateToken" in logged  # the verbose log really was on
    assert "alice@example.com" in logged  # requests were logged, with secrets masked
    for secret in secrets:
        assert secret not in logged
        # Also no recognisable piece of a JWT (its signature is the last segment).
        assert secret.rsplit(".", 1)[-1] not in logged
