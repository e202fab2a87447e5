"""Credential RPCs are rate limited per caller; the hot read-only RPCs are not."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2

from .conftest import auth_settings, running_auth


async def test_login_is_limited_but_validate_token_is_not(tmp_path: Path):
    """Past the budget Login gets RESOURCE_EXHAUSTED with retry info; ValidateToken keeps going."""
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
        for _ in range(10):
            verdict = await auth.stub.ValidateToken(
                auth_pb2.ValidateTokenRequest(token=login.access_token)
            )
            assert verdict.valid
