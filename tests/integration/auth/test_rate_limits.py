"""Every RPC but GetJwks and HealthCheck is rate limited per caller, ValidateToken included."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2
from zoptal.clients.errors import api_error

from tests.mesh import auth_settings

from .conftest import running_auth


async def test_login_and_validate_token_are_limited_but_get_jwks_is_not(tmp_path: Path):
    """Past the budget Login and ValidateToken get RESOURCE_EXHAUSTED with retry info (per
    caller: the anonymous peer, then the user); GetJwks keeps answering."""
    settings = auth_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}", rate_limit_max_requests=4
    )
    async with running_auth(settings) as auth:  # its admin login spent one call of the budget
        login = await auth.register_and_login()  # two more
        wrong = auth_pb2.LoginRequest(email="alice@example.com", password="wrong password!!")
        with pytest.raises(grpc.aio.AioRpcError) as first:
            await auth.stub.Login(wrong)
        assert first.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await auth.stub.Login(wrong)
        assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert any(key == "retry-after" for key, _ in limited.value.trailing_metadata() or ())
        rate_limited = api_error(limited.value)  # what a typed client raises
        assert (rate_limited.reason, rate_limited.domain) == ("RATE_LIMITED", "zoptal.auth.v1")
        assert rate_limited.retry_after is not None

        # The user's own budget: four validations, then refused.
        own = auth_pb2.ValidateTokenRequest(token=login.access_token)
        for _ in range(4):
            verdict = await auth.stub.ValidateToken(own, metadata=auth.bearer(login.access_token))
            assert verdict.valid
        with pytest.raises(grpc.aio.AioRpcError) as validate_limited:
            await auth.stub.ValidateToken(own, metadata=auth.bearer(login.access_token))
        assert validate_limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        for _ in range(10):
            assert (await auth.stub.GetJwks(auth_pb2.GetJwksRequest())).keys
