"""meshcore.jwt: pinned algorithms, key choice by algorithm family, time from a fake clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from meshcore.jwt import InvalidToken, SigningKey, StaticKeys, TokenVerifier, jwk_thumbprint
from meshcore.testing import FakeClock

ISSUER = "zoptal-auth"
AUDIENCE = "zoptal"


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge_hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """Sign by hand, as an attacker would: PyJWT itself refuses public keys as HMAC secrets."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _public_pem(key: SigningKey) -> bytes:
    return (
        pyjwt.get_algorithm_by_name("ES256")
        .from_jwk(key.public_jwk())
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = clock.time()
    claims: dict[str, Any] = {
        "sub": "user-1",
        "email": "a@example.com",
        "roles": ["user"],
        "permissions": ["project:read"],
        "typ": "access",
        "jti": "jti-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def _verifier(
    key: SigningKey, clock: FakeClock, *, hmac: str | None = None, algorithms: tuple[str, ...] = ()
) -> TokenVerifier:
    return TokenVerifier(
        StaticKeys([key.public_jwk()], hmac_secret=hmac),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=algorithms or (("ES256", "HS256") if hmac else ("ES256",)),
        leeway=30,
        clock=clock,
    )


async def _reason(verifier: TokenVerifier, token: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, **kwargs)
    return caught.value.reason


async def test_signed_token_verifies_with_claims_roles_and_permissions(key, clock):
    """A token signed by the key verifies and exposes subject, type, roles and permissions."""
    verified = await _verifier(key, clock).verify(key.sign(_claims(clock)))
    assert verified.subject == "user-1"
    assert verified.token_type == "user"
    assert verified.roles == frozenset({"user"})
    assert verified.permissions == frozenset({"project:read"})
    assert verified.key_id == key.kid
    assert verified.expires_at == clock.time() + 300


async def test_expired_token_is_rejected_only_after_the_leeway(key, clock):
    """exp is honoured against the injected clock, with the configured leeway."""
    verifier = _verifier(key, clock)
    token = key.sign(_claims(clock))
    clock.advance(300 + 29)
    await verifier.verify(token)
    clock.advance(2)
    assert await _reason(verifier, token) == "expired"


async def test_not_yet_valid_token_is_rejected_until_nbf(key, clock):
    """A token whose nbf lies beyond the leeway is not yet valid, and becomes valid later."""
    verifier = _verifier(key, clock)
    token = key.sign(_claims(clock, nbf=clock.time() + 120, iat=None))
    assert await _reason(verifier, token) == "not_yet_valid"
    clock.advance(100)
    assert (await verifier.verify(token)).subject == "user-1"


async def test_alg_none_is_rejected(key, clock):
    """An unsigned token (alg none) never verifies, even with valid claims."""
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(clock))}."
    assert await _reason(_verifier(key, clock), token) == "algorithm_not_allowed"


async def test_hs256_forged_with_the_public_key_is_rejected_when_hmac_is_not_pinned(key, clock):
    """HS256 signed with the public key's bytes fails: HS256 is not in the pinned list."""
    forged = _forge_hs256(_claims(clock), _public_pem(key), key.kid)
    assert await _reason(_verifier(key, clock), forged) == "algorithm_not_allowed"


async def test_hs256_forged_with_the_public_key_fails_even_when_hmac_is_allowed(key, clock):
    """With HS256 pinned, the HMAC secret (never the public key) checks it: bad signature."""
    forged = _forge_hs256(_claims(clock), _public_pem(key), key.kid)
    verifier = _verifier(key, clock, hmac="a-real-configured-secret-of-32-bytes!")
    assert await _reason(verifier, forged) == "bad_signature"


async def test_hs256_token_with_the_configured_secret_verifies(key, clock):
    """Seed compatibility: HS256 tokens signed with JWT_SECRET verify when it is configured."""
    secret = "a-real-configured-secret-of-32-bytes!"
    token = pyjwt.encode(_claims(clock), secret, algorithm="HS256")
    verified = await _verifier(key, clock, hmac=secret).verify(token)
    assert verified.subject == "user-1"
    assert verified.key_id is None


async def test_tampered_payload_fails_the_signature(key, clock):
    """Changing one claim after signing breaks the signature."""
    header, _, signature = key.sign(_claims(clock)).split(".")
    tampered = f"{header}.{_b64(_claims(clock, roles=['admin']))}.{signature}"
    assert await _reason(_verifier(key, clock), tampered) == "bad_signature"


async def test_token_signed_by_another_key_with_the_same_kid_fails(key, clock):
    """A different private key cannot borrow a published kid."""
    other = SigningKey.generate()
    forged = pyjwt.encode(
        _claims(clock), other.private_pem(), algorithm="ES256", headers={"kid": key.kid}
    )
    assert await _reason(_verifier(key, clock), forged) == "bad_signature"


async def test_unknown_kid_is_rejected(key, clock):
    """A token naming a key the verifier does not know is unknown_key."""
    other = SigningKey.generate()
    assert await _reason(_verifier(key, clock), other.sign(_claims(clock))) == "unknown_key"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "someone-else"}, "wrong_issuer"),
        ({"aud": "another-audience"}, "wrong_audience"),
        ({"aud": ["x", "y"]}, "wrong_audience"),
        ({"exp": None}, "malformed"),
        ({"exp": "tomorrow"}, "malformed"),
        ({"exp": 10**400}, "malformed"),  # too large for a float
        ({"exp": 1e308}, "malformed"),  # a float, but past any representable timestamp
        ({"nbf": -(10**20)}, "malformed"),
        ({"iat": 253_402_300_800}, "malformed"),  # the first second of year 10000
        ({"sub": None}, "malformed"),
        ({"permissions": "project:read"}, "malformed"),
        ({"typ": "refresh"}, "wrong_token_type"),
    ],
)
async def test_claims_that_do_not_fit_are_rejected_with_their_reason(key, clock, overrides, reason):
    """Issuer, audience, required claims and token type each have their own reason."""
    assert await _reason(_verifier(key, clock), key.sign(_claims(clock, **overrides))) == reason


def _signed_text(key: SigningKey, payload: str, header: str | None = None) -> str:
    """``payload`` signed by ``key`` exactly as written (JSON that json.dumps will not write)."""
    private = serialization.load_pem_private_key(key.private_pem(), password=None)
    token = pyjwt.api_jws.PyJWS().encode(
        payload.encode(), private, algorithm="ES256", headers={"kid": key.kid}
    )
    if header is None:
        return token
    _, body, signature = token.split(".")
    encoded = base64.urlsafe_b64encode(header.encode()).rstrip(b"=").decode()
    return f"{encoded}.{body}.{signature}"


def _with_claim(clock: FakeClock, name: str, literal: str) -> str:
    """The usual claims as JSON text, with ``name`` holding the JSON ``literal``."""
    claims = _claims(clock)
    claims[name] = "@value@"
    return json.dumps(claims).replace('"@value@"', literal)


DEEP = "[" * 3_000 + "]" * 3_000  # deeper than json.loads recurses (it raised RecursionError)


@pytest.mark.parametrize(
    ("name", "literal"),
    [
        ("exp", "1e999"),  # an infinity once parsed
        ("exp", "NaN"),
        ("nbf", "null"),  # present but no time: it used to count as absent
        ("iat", "-1"),  # before 1970: no token was issued then (and year 0 broke ValidateToken)
        ("iat", "-62135596801"),
        ("exp", DEEP),
        ("sub", '"' + "u" * 65 + '"'),  # longer than any id column
        ("sub", "null"),
        ("jti", '{"$gt": 0}'),  # unhashable in a revocation lookup: it was UNKNOWN
        ("sid", '["a"]'),
        ("jti", '""'),
        ("email", "1e308"),
        ("serviceName", "true"),
        ("typ", "null"),
        ("roles", json.dumps(["user"] * 257)),
        ("permissions", json.dumps(["p" * 129])),
        ("permissions", "[null]"),
        ("aud", json.dumps([{"a": 1}, AUDIENCE])),  # ours beside something that is no audience
    ],
)
async def test_claim_of_the_wrong_shape_is_malformed(key, clock, name, literal):
    """A registered claim that no token of ours could hold is malformed, never an exception."""
    token = _signed_text(key, _with_claim(clock, name, literal))
    assert await _reason(_verifier(key, clock), token) == "malformed"


async def test_header_nested_too_deeply_is_malformed(key, clock):
    """A header json.loads cannot parse without recursing too deep: refused, no key needed."""
    header = json.dumps({"alg": "ES256", "kid": key.kid, "x": "@deep@"}).replace('"@deep@"', DEEP)
    token = _signed_text(key, json.dumps(_claims(clock)), header=header)
    assert await _reason(_verifier(key, clock), token) == "malformed"


async def test_audience_list_containing_ours_is_accepted(key, clock):
    """aud may be a list; it is accepted when it contains our audience."""
    token = key.sign(_claims(clock, aud=["other", AUDIENCE]))
    assert (await _verifier(key, clock).verify(token)).subject == "user-1"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "....", "x" * 20_000, "eyJ.eyJ.sig"])
async def test_garbage_is_malformed(key, clock, garbage):
    """Anything that is not a compact JWS is malformed, never an unexpected exception."""
    assert await _reason(_verifier(key, clock), garbage) == "malformed"


async def test_service_token_type_and_expected_type(key, clock):
    """typ=service gives a service principal; asking for a user token then fails."""
    claims = _claims(clock, typ="service", sub="svc-1", serviceId="svc-1", serviceName="billing")
    token = key.sign(claims)
    verifier = _verifier(key, clock)
    assert (await verifier.verify(token, expected_type="service")).token_type == "service"
    assert await _reason(verifier, token, expected_type="user") == "wrong_token_type"


async def test_seed_service_token_without_exp_needs_require_expiry_off(clock):
    """Seed HS256 service tokens carry only serviceId, serviceName and permissions."""
    secret = "service-token-secret-of-at-least-32-bytes"
    token = pyjwt.encode(
        {"serviceId": "auth-service", "serviceName": "Auth", "permissions": ["user:read"]},
        secret,
        algorithm="HS256",
    )
    keys = StaticKeys(hmac_secret=secret)
    strict = TokenVerifier(keys, issuer=None, audience=None, algorithms=["HS256"], clock=clock)
    assert await _reason(strict, token) == "malformed"
    lenient = TokenVerifier(
        keys, issuer=None, audience=None, algorithms=["HS256"], clock=clock, require_expiry=False
    )
    verified = await lenient.verify(token)
    assert (verified.subject, verified.token_type) == ("auth-service", "service")


def test_verifier_refuses_none_or_unknown_algorithms():
    """Pinning 'none' (or nothing) is a configuration error caught at construction."""
    keys = StaticKeys(hmac_secret="x" * 32)
    with pytest.raises(ValueError, match="algorithm"):
        TokenVerifier(keys, issuer=None, audience=None, algorithms=["none"])
    with pytest.raises(ValueError, match="algorithm"):
        TokenVerifier(keys, issuer=None, audience=None, algorithms=[])


def test_kid_is_the_rfc7638_thumbprint():
    """The RFC 7638 example key hashes to the thumbprint the RFC gives."""
    rfc_key = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(rfc_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_signing_key_round_trips_through_pem_with_the_same_kid():
    """A key saved as PEM and loaded again keeps its kid, so published JWKS stay stable."""
    key = SigningKey.generate()
    again = SigningKey.from_pem(key.private_pem())
    assert again.kid == key.kid
    assert "d" not in again.public_jwk()


async def test_eddsa_keys_sign_and_verify(clock):
    """EdDSA (Ed25519) keys work end to end as the alternative to ES256."""
    key = SigningKey.generate("EdDSA")
    verifier = TokenVerifier(
        StaticKeys([key.public_jwk()]),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=["EdDSA"],
        clock=clock,
    )
    assert (await verifier.verify(key.sign(_claims(clock)))).key_id == key.kid


async def test_es256_key_is_not_used_for_an_eddsa_token(key, clock):
    """A key of the wrong type for the token's algorithm is never tried."""
    ed = SigningKey.generate("EdDSA")
    forged_kid = pyjwt.encode(
        _claims(clock), ed.private_pem(), algorithm="EdDSA", headers={"kid": key.kid}
    )
    verifier = _verifier(key, clock, algorithms=("ES256", "EdDSA"))
    assert await _reason(verifier, forged_kid) == "unknown_key"
