"""A new user's first minutes with Auth, over real gRPC against the embedded platform."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import jwt
import pytest
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc

from tests.e2e.platform import EmbeddedPlatform


@pytest.fixture
def auth(embedded_platform: EmbeddedPlatform) -> Iterator[auth_pb2_grpc.AuthServiceStub]:
    channel = grpc.insecure_channel(embedded_platform.auth)
    yield auth_pb2_grpc.AuthServiceStub(channel)
    channel.close()


def _register_and_login(auth: auth_pb2_grpc.AuthServiceStub) -> auth_pb2.LoginResponse:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct-horse-battery-9"
    auth.RegisterUser(
        auth_pb2.RegisterUserRequest(email=email, password=password, display_name="Ada"), timeout=10
    )
    return auth.Login(auth_pb2.LoginRequest(email=email, password=password), timeout=10)


def test_register_login_validate_refresh_revoke(auth: auth_pb2_grpc.AuthServiceStub) -> None:
    """The journey of issue 2: every step answers as a client expects."""
    login = _register_and_login(auth)
    # A user may validate their own tokens (anyone else's needs user:validate).
    valid = auth.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=login.access_token),
        metadata=(("authorization", f"Bearer {login.access_token}"),),
        timeout=5,
    )
    assert valid.valid
    assert valid.user_id == login.user.id
    assert "project:create" in valid.permissions

    refreshed = auth.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token), timeout=5
    )
    assert refreshed.refresh_token != login.refresh_token
    assert auth.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=refreshed.access_token),
        metadata=(("authorization", f"Bearer {refreshed.access_token}"),),
        timeout=5,
    ).valid

    auth.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=refreshed.access_token),
        metadata=(("authorization", f"Bearer {refreshed.access_token}"),),  # revokes itself
        timeout=5,
    )
    after = auth.ValidateToken(  # asked with the login's first token, still valid
        auth_pb2.ValidateTokenRequest(token=refreshed.access_token),
        metadata=(("authorization", f"Bearer {login.access_token}"),),
        timeout=5,
    )
    assert not after.valid
    assert after.reason == auth_pb2.INVALID_TOKEN_REASON_REVOKED


def test_reusing_a_spent_refresh_token_revokes_its_family(
    auth: auth_pb2_grpc.AuthServiceStub,
) -> None:
    """A stolen, already-rotated refresh token is refused and takes its successor down too."""
    login = _register_and_login(auth)
    rotated = auth.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token), timeout=5
    )
    with pytest.raises(grpc.RpcError) as reuse:
        auth.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token), timeout=5
        )
    assert reuse.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as successor:
        auth.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=rotated.refresh_token), timeout=5
        )
    assert successor.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_garbage_token_is_invalid_not_an_error(auth: auth_pb2_grpc.AuthServiceStub) -> None:
    """ValidateToken answers valid=false with a reason for a malformed token."""
    login = _register_and_login(auth)
    reply = auth.ValidateToken(
        auth_pb2.ValidateTokenRequest(token="not.a.jwt"),
        metadata=(("authorization", f"Bearer {login.access_token}"),),
        timeout=5,
    )
    assert not reply.valid
    assert reply.reason == auth_pb2.INVALID_TOKEN_REASON_MALFORMED


def test_jwks_over_http_verifies_an_access_token(
    embedded_platform: EmbeddedPlatform, auth: auth_pb2_grpc.AuthServiceStub
) -> None:
    """The plain-HTTP JWKS (for Istio RequestAuthentication) verifies tokens Auth signs."""
    login = _register_and_login(auth)
    with urllib.request.urlopen(embedded_platform.jwks_url, timeout=5) as response:  # noqa: S310
        jwks = json.load(response)
    kid = jwt.get_unverified_header(login.access_token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(
        login.access_token,
        jwt.PyJWK(key).key,
        algorithms=[key["alg"]],
        audience="zoptal",
        issuer="zoptal-auth",
    )
    assert claims["sub"] == login.user.id
