"""Bad input gets the documented status (issue 2, "Bad input"), never UNKNOWN or INTERNAL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import grpc
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from meshcore.jwt import SigningKey
from zoptal.auth.v1 import auth_pb2

from tests.mesh import PASSWORD


def _reason(name: str) -> int:
    return auth_pb2.InvalidTokenReason.Value(f"INVALID_TOKEN_REASON_{name}")


def _b64(data: object) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def _status_of(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not-an-email", PASSWORD, "email"),
        ("", PASSWORD, "email"),
        ("alice@example.com", "short", "password"),
        ("alice@example.com", "password1234", "password"),
        ("alice@example.com", "", "password"),
    ],
)
async def test_register_with_bad_email_or_weak_password_names_the_field(
    auth, email, password, field
):
    """RegisterUser: INVALID_ARGUMENT whose message starts with the offending field."""
    error = await _status_of(
        auth.stub.RegisterUser(auth_pb2.RegisterUserRequest(email=email, password=password))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")


async def test_duplicate_email_in_another_case_is_already_exists(auth):
    """RegisterUser twice with the same email (case-insensitively): ALREADY_EXISTS."""
    await auth.register_and_login("alice@example.com")
    error = await _status_of(
        auth.stub.RegisterUser(
            auth_pb2.RegisterUserRequest(email="ALICE@example.com", password=PASSWORD)
        )
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_wrong_password_and_unknown_user_are_indistinguishable(auth):
    """Login: the same UNAUTHENTICATED status and message for both mistakes."""
    await auth.register_and_login("alice@example.com")
    wrong = await _status_of(
        auth.stub.Login(auth_pb2.LoginRequest(email="alice@example.com", password="nope" * 4))
    )
    unknown = await _status_of(
        auth.stub.Login(auth_pb2.LoginRequest(email="ghost@example.com", password="nope" * 4))
    )
    assert wrong.code() == unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong.details() == unknown.details()


async def test_empty_or_oversized_token_is_invalid_argument(auth):
    """ValidateToken with no token, or one over 8192 characters, names the field."""
    for token in ("", "x" * 8193):
        request = auth_pb2.ValidateTokenRequest(token=token)
        error = await _status_of(
            auth.stub.ValidateToken(request, metadata=auth.bearer(auth.admin_token))
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("token:")


async def test_every_kind_of_bad_token_is_a_verdict_not_an_error(auth):
    """Garbage, alg none, HS256 with the public key, expired, not yet valid, wrong audience,
    wrong issuer, tampered and revoked tokens all give valid=false with their reason."""
    login = await auth.register_and_login()
    key = auth.app.keys.current
    now = int(time.time())
    base = {
        "sub": login.user.id,
        "typ": "access",
        "iss": auth.app.settings.jwt_issuer,
        "aud": auth.app.settings.jwt_audience,
        "iat": now,
        "exp": now + 300,
        "jti": "x1",
    }
    public_pem = (
        pyjwt.get_algorithm_by_name("ES256")
        .from_jwk(key.public_jwk())
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    hs_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(base)}"
    mac = hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest()
    hs_forged = f"{hs_input}.{_b64(mac)}"
    header, payload, signature = login.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["permissions"].append("admin:everything")
    revoked = await auth.register_and_login("carol@example.com")
    await auth.stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(token=revoked.access_token),
        metadata=auth.bearer(revoked.access_token),
    )
    cases = {
        "garbage": ("definitely not a token", "MALFORMED"),
        "alg none": (f"{_b64({'alg': 'none'})}.{_b64(base)}.", "ALGORITHM_NOT_ALLOWED"),
        "hs256 with public key": (hs_forged, "ALGORITHM_NOT_ALLOWED"),
        "expired": (key.sign({**base, "iat": now - 900, "exp": now - 600}), "EXPIRED"),
        "not yet valid": (key.sign({**base, "nbf": now + 600}), "NOT_YET_VALID"),
        "wrong audience": (key.sign({**base, "aud": "somebody-else"}), "WRONG_AUDIENCE"),
        "wrong issuer": (key.sign({**base, "iss": "evil-issuer"}), "WRONG_ISSUER"),
        "tampered": (f"{header}.{_b64(claims)}.{signature}", "BAD_SIGNATURE"),
        "foreign key": (SigningKey.generate().sign(base), "UNKNOWN_KEY"),
        "revoked": (revoked.access_token, "REVOKED"),
    }
    for name, (token, reason) in cases.items():
        verdict = await auth.stub.ValidateToken(
            auth_pb2.ValidateTokenRequest(token=token), metadata=auth.bearer(auth.admin_token)
        )
        assert (verdict.valid, verdict.reason) == (False, _reason(reason)), name
        assert verdict.reason_detail, name
        assert token not in verdict.reason_detail


async def test_refresh_with_garbage_is_unauthenticated_and_empty_is_invalid(auth):
    """RefreshToken: unknown tokens are UNAUTHENTICATED, an empty one INVALID_ARGUMENT."""
    unknown = await _status_of(
        auth.stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token="rt_nonsense"))
    )
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    empty = await _status_of(auth.stub.RefreshToken(auth_pb2.RefreshTokenRequest()))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert empty.details().startswith("refresh_token:")


async def test_create_service_account_needs_admin_and_valid_fields(auth):
    """CreateServiceAccount: users are denied; admins get INVALID_ARGUMENT for a bad name."""
    user = await auth.register_and_login()
    request = auth_pb2.CreateServiceAccountRequest(name="billing-service")
    denied = await _status_of(
        auth.stub.CreateServiceAccount(request, metadata=auth.bearer(user.access_token))
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    anonymous = await _status_of(auth.stub.CreateServiceAccount(request))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    bad_name = await _status_of(
        auth.stub.CreateServiceAccount(
            auth_pb2.CreateServiceAccountRequest(name="Bad Name"),
            metadata=auth.bearer(auth.admin_token),
        )
    )
    assert bad_name.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_name.details().startswith("name:")
