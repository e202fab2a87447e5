"""The user journey over gRPC: register, log in, validate, refresh, reuse, revoke, validate."""

from __future__ import annotations

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2

from tests.mesh import PASSWORD

INVALID = auth_pb2.InvalidTokenReason


async def _validate(auth, token: str) -> auth_pb2.ValidateTokenResponse:
    # As the admin (who holds user:validate): a revoked token cannot vouch for itself.
    return await auth.stub.ValidateToken(
        auth_pb2.ValidateTokenRequest(token=token), metadata=auth.bearer(auth.admin_token)
    )


async def test_register_login_validate_refresh_reuse_revoke_journey(auth):
    """The whole session lifecycle behaves as the API documents, end to end."""
    registered = await auth.stub.RegisterUser(
        auth_pb2.RegisterUserRequest(email="Alice@Example.com", password=PASSWORD)
    )
    assert registered.user.email == "alice@example.com"
    assert list(registered.user.roles) == ["user"]

    login = await auth.stub.Login(
        auth_pb2.LoginRequest(email="alice@example.com", password=PASSWORD)
    )
    assert login.token_type == "Bearer"
    assert login.refresh_token.startswith("rt_")
    valid = await _validate(auth, login.access_token)
    assert valid.valid
    assert valid.token_type == auth_pb2.TOKEN_TYPE_USER
    assert valid.user_id == registered.user.id
    assert valid.email == "alice@example.com"
    assert "project:create" in valid.permissions
    assert valid.token_id
    assert valid.expires_at.seconds > valid.issued_at.seconds

    refreshed = await auth.stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
    )
    assert (await _validate(auth, refreshed.access_token)).valid

    # Replaying the spent refresh token revokes the whole family, tokens issued since included.
    with pytest.raises(grpc.aio.AioRpcError) as replay:
        await auth.stub.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
        )
    assert replay.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as family_gone:
        await auth.stub.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=refreshed.refresh_token)
        )
    assert family_gone.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await _validate(auth, refreshed.access_token)).reason == INVALID.Value(
        "INVALID_TOKEN_REASON_REVOKED"
    )

    # A new login; its access token revokes itself, then validates as revoked.
    second = await auth.stub.Login(
        auth_pb2.LoginRequest(email="alice@example.com", password=PASSWORD)
    )
    revoke = await auth.stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=second.access_token),
        metadata=auth.bearer(second.access_token),
    )
    assert revoke.revoked
    after = await _validate(auth, second.access_token)
    assert (after.valid, after.reason) == (False, INVALID.Value("INVALID_TOKEN_REASON_REVOKED"))
    assert after.user_id == ""  # an invalid verdict says nothing about the bearer


async def test_revoking_a_refresh_token_ends_its_login(auth):
    """RevokeToken with a refresh token: refresh fails and its access tokens are revoked."""
    login = await auth.register_and_login()
    revoke = await auth.stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=login.refresh_token),
        metadata=auth.bearer(login.access_token),
    )
    assert revoke.revoked
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth.stub.RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not (await _validate(auth, login.access_token)).valid


async def test_get_user_and_permissions_for_self_and_admin_only(auth):
    """GetUser/GetUserPermissions: the user themself and an admin may; another user may not."""
    alice = await auth.register_and_login()
    bob = await auth.register_and_login("bob@example.com")
    request = auth_pb2.GetUserRequest(user_id=alice.user.id)
    own = await auth.stub.GetUser(request, metadata=auth.bearer(alice.access_token))
    assert own.user.email == "alice@example.com"
    by_admin = await auth.stub.GetUserPermissions(
        auth_pb2.GetUserPermissionsRequest(user_id=alice.user.id),
        metadata=auth.bearer(auth.admin_token),
    )
    assert "billing:read" in by_admin.permissions
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await auth.stub.GetUser(request, metadata=auth.bearer(bob.access_token))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await auth.stub.GetUser(request)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await auth.stub.GetUser(
            auth_pb2.GetUserRequest(user_id="no-such-user"), metadata=auth.bearer(auth.admin_token)
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_check_reports_database_and_signing_key(auth):
    """HealthCheck lists both dependencies as healthy, sorted by name."""
    report = await auth.stub.HealthCheck(auth_pb2.HealthCheckRequest())
    assert report.status == auth_pb2.HEALTH_STATUS_HEALTHY
    assert [d.name for d in report.dependencies] == ["database", "signing_key"]
    assert all(d.status == auth_pb2.HEALTH_STATUS_HEALTHY for d in report.dependencies)


async def test_grpc_health_reports_serving(auth):
    """grpc.health.v1 says SERVING for the Auth service once its dependencies answer."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(auth.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="zoptal.auth.v1.AuthService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
