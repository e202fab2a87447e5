"""ValidateToken's domain: a verdict with a reason for every bad token, never an exception."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from meshcore.context import Principal
from meshcore.jwt import SigningKey
from meshcore.migrations import upgrade_database
from meshcore.settings import Secret
from zoptal_auth.app import MIGRATIONS_DIR, build_app

from tests.unit.auth.conftest import VALIDATOR

PASSWORD = "violet tractor harbour"


def _b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(app, clock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.time())
    claims: dict[str, Any] = {
        "sub": "u1",
        "typ": "access",
        "iss": app.settings.jwt_issuer,
        "aud": app.settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "j1",
    }
    claims.update(overrides)
    return claims


async def _logged_in(app):
    await app.auth.register_user("alice@example.com", PASSWORD)
    return await app.auth.login("alice@example.com", PASSWORD)


async def test_login_token_is_valid_with_roles_and_permissions(app):
    """A fresh access token validates and carries the user's roles and permissions."""
    tokens = await _logged_in(app)
    check = await app.auth.validate(tokens.access_token, VALIDATOR)
    assert check.valid
    assert check.verified.subject == tokens.user.id
    assert "user" in check.verified.roles
    assert "project:create" in check.verified.permissions
    assert check.verified.claims["sid"]  # ties the token to its refresh family


async def test_access_token_expires_with_the_clock(app, clock):
    """After its lifetime plus the leeway the token is expired."""
    tokens = await _logged_in(app)
    clock.advance(app.settings.access_token_ttl_seconds + app.settings.jwt_leeway_seconds + 1)
    check = await app.auth.validate(tokens.access_token, VALIDATOR)
    assert (check.valid, check.reason) == (False, "expired")


async def test_not_yet_valid_token_is_rejected(app, clock):
    """A token whose nbf is in the future (beyond the leeway) is not yet valid."""
    token = app.keys.current.sign(_claims(app, clock, nbf=int(clock.time()) + 600))
    assert (await app.auth.validate(token, VALIDATOR)).reason == "not_yet_valid"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [({"iss": "evil"}, "wrong_issuer"), ({"aud": "elsewhere"}, "wrong_audience")],
)
async def test_wrong_issuer_or_audience_is_rejected(app, clock, overrides, reason):
    """Tokens for another issuer or audience are refused with that reason."""
    token = app.keys.current.sign(_claims(app, clock, **overrides))
    assert (await app.auth.validate(token, VALIDATOR)).reason == reason


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "eyJhbGciOiJFUzI1NiJ9..", "🙂.🙂.🙂"])
async def test_garbage_is_malformed(app, garbage):
    """Anything that is not a JWT is 'malformed'."""
    check = await app.auth.validate(garbage, VALIDATOR)
    assert (check.valid, check.reason) == (False, "malformed")


async def test_alg_none_is_rejected(app, clock):
    """An unsigned token is refused whatever it claims."""
    token = f"{_b64({'alg': 'none'})}.{_b64(_claims(app, clock))}."
    assert (await app.auth.validate(token, VALIDATOR)).reason == "algorithm_not_allowed"


async def test_hs256_forged_with_the_public_key_is_rejected(app, clock):
    """The classic confusion attack: HMAC keyed with our public key PEM gets nowhere."""
    public_pem = (
        pyjwt.get_algorithm_by_name("ES256")
        .from_jwk(app.keys.jwks()["keys"][0])
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "kid": app.keys.current.kid}
    signing_input = f"{_b64(header)}.{_b64(_claims(app, clock))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    check = await app.auth.validate(f"{signing_input}.{_b64(mac)}", VALIDATOR)
    assert (check.valid, check.reason) == (False, "algorithm_not_allowed")


async def test_tampered_token_fails_its_signature(app):
    """Editing the payload of a real token breaks its signature."""
    tokens = await _logged_in(app)
    header, payload, signature = tokens.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin"]
    check = await app.auth.validate(f"{header}.{_b64(claims)}.{signature}", VALIDATOR)
    assert (check.valid, check.reason) == (False, "bad_signature")


async def test_token_from_a_foreign_key_is_unknown_key(app, clock):
    """A well-formed token signed by a key we never published is unknown_key."""
    token = SigningKey.generate().sign(_claims(app, clock))
    assert (await app.auth.validate(token, VALIDATOR)).reason == "unknown_key"


async def test_no_shared_secret_makes_a_service_token(settings, clock):
    """HS256 never proves a service: not the seed's form, not one signed with JWT_SECRET."""
    secret = "a-configured-jwt-secret-that-is-long-enough"
    configured = replace(settings, jwt_secret=Secret(secret))
    await upgrade_database(configured.database_url, MIGRATIONS_DIR)
    app = await build_app(configured, clock=clock)
    try:
        now = int(clock.time())
        seed_style = {
            "serviceId": "billing",
            "serviceName": "billing",
            "permissions": ["user:read"],
            "iat": now,
            "exp": now + 60,
        }
        with_typ = {**_claims(app, clock), **seed_style, "typ": "service"}
        for claims, reason in ((seed_style, "wrong_issuer"), (with_typ, "wrong_token_type")):
            check = await app.auth.validate(
                pyjwt.encode(claims, secret, algorithm="HS256"), VALIDATOR
            )
            assert check.reason == reason
    finally:
        await app.database.dispose()


async def test_a_service_token_never_carries_roles(app, clock):
    """A roles claim in a service token is dropped: a service's rights are its permissions."""
    claims = {
        **_claims(app, clock),
        "typ": "service",
        "serviceId": "sa-1",
        "serviceName": "billing",
        "roles": ["admin"],
    }
    check = await app.auth.validate(app.keys.current.sign(claims), VALIDATOR)
    assert check.valid
    assert check.verified.token_type == "service"
    assert check.verified.roles == frozenset()


async def test_hs256_user_tokens_need_jwt_secret_configured(settings, clock):
    """With JWT_SECRET set, HS256 user tokens signed with it validate; others do not."""
    secret = "a-configured-jwt-secret-that-is-long-enough"
    configured = replace(settings, jwt_secret=Secret(secret))
    await upgrade_database(configured.database_url, MIGRATIONS_DIR)
    app = await build_app(configured, clock=clock)
    try:
        good = pyjwt.encode(_claims(app, clock), secret, algorithm="HS256")
        assert (await app.auth.validate(good, VALIDATOR)).valid
        other_secret = "another-secret-of-enough-length!!"
        bad = pyjwt.encode(_claims(app, clock), other_secret, algorithm="HS256")
        assert (await app.auth.validate(bad, VALIDATOR)).reason == "bad_signature"
    finally:
        await app.database.dispose()


async def test_a_cached_verdict_still_expires_and_still_sees_revocation(app, clock):
    """Validating twice uses the cache, yet expiry and revocation are checked every time."""
    tokens = await _logged_in(app)
    assert (await app.auth.validate(tokens.access_token, VALIDATOR)).valid
    assert (await app.auth.validate(tokens.access_token, VALIDATOR)).valid  # served from the cache
    clock.advance(app.settings.access_token_ttl_seconds + app.settings.jwt_leeway_seconds)
    assert (await app.auth.validate(tokens.access_token, VALIDATOR)).reason == "expired"

    fresh = await app.auth.login("alice@example.com", PASSWORD)
    assert (await app.auth.validate(fresh.access_token, VALIDATOR)).valid
    owner = Principal(subject=fresh.user.id, kind="user")
    assert await app.auth.revoke(fresh.access_token, owner)
    assert (await app.auth.validate(fresh.access_token, VALIDATOR)).reason == "revoked"


@pytest.mark.parametrize("exp", [10**400, 1e308])
async def test_an_expiry_no_timestamp_can_hold_is_malformed_not_a_server_error(app, clock, exp):
    """ValidateToken answers `malformed` for exp = 10**400 or 1e308 (it used to raise)."""
    token = app.keys.current.sign(_claims(app, clock, exp=exp))
    assert (await app.auth.validate(token, VALIDATOR)).reason == "malformed"
