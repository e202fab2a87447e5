"""AuthInterceptor: bearer and service tokens, permissions, exclusions and the verified cache."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from meshcore.interceptors import AuthInterceptor, ErrorMappingInterceptor
from meshcore.jwt import SigningKey, StaticKeys, TokenVerifier, VerifiedToken
from meshcore.testing import FakeClock

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    SERVICE_SECRET,
    UNARY,
    USER_SECRET,
    EchoClient,
    EchoFactory,
    hs256_token,
    service_token,
    user_token,
)


def _auth(**kwargs: Any) -> AuthInterceptor:
    options: dict[str, Any] = {
        "jwt_secret": USER_SECRET,
        "service_token_secret": SERVICE_SECRET,
        "issuer": "zoptal-auth",
        "audience": "zoptal",
    }
    options.update(kwargs)
    return AuthInterceptor(**options)


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _one(item: bytes) -> AsyncIterator[bytes]:
    yield item


async def _subjects_in_every_shape(client: EchoClient, metadata: Any) -> list[bytes]:
    replies = [await client.unary(b"u", metadata=metadata)]
    replies += [r async for r in client.server_stream(b"s", metadata=metadata)][:1]
    replies.append(await client.client_stream(_one(b"c"), metadata=metadata))
    replies += [r async for r in client.bidi(_one(b"b"), metadata=metadata)]
    return replies


async def _codes_in_every_shape(client: EchoClient, metadata: Any) -> list[grpc.StatusCode]:
    codes = []
    calls = [
        lambda: client.unary(b"u", metadata=metadata),
        lambda: client.client_stream(_one(b"c"), metadata=metadata),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call()
        codes.append(raised.value.code())
    streams = [
        lambda: client.server_stream(b"s", metadata=metadata),
        lambda: client.bidi(_one(b"b"), metadata=metadata),
    ]
    for stream in streams:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            [r async for r in stream()]
        codes.append(raised.value.code())
    return codes


async def test_a_valid_bearer_token_puts_the_user_in_the_call_context(echo: EchoFactory) -> None:
    """Every RPC shape sees the user principal through current_principal()."""
    client = await echo([_auth(), ErrorMappingInterceptor()])
    replies = await _subjects_in_every_shape(client, _bearer(user_token(time.time())))
    assert [reply.split(b"|")[1] for reply in replies if b"|" in reply] == [b"user-1"] * 3
    assert replies[2] == b"c"


async def test_missing_credentials_are_unauthenticated_in_every_shape(echo: EchoFactory) -> None:
    """No authorization and no x-service-token: UNAUTHENTICATED, the handler never runs."""
    client = await echo([_auth()])
    assert await _codes_in_every_shape(client, None) == [grpc.StatusCode.UNAUTHENTICATED] * 4


async def test_an_invalid_token_is_unauthenticated_with_its_reason(echo: EchoFactory) -> None:
    """A token signed with another key is refused, and the message names the reason."""
    client = await echo([_auth()])
    forged = _bearer(user_token(time.time()).rsplit(".", 1)[0] + ".AAAA")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x", metadata=forged)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bad_signature" in (raised.value.details() or "")


async def test_a_missing_permission_is_denied_by_name(echo: EchoFactory) -> None:
    """A method's required permission missing from the token: PERMISSION_DENIED naming it."""
    client = await echo([_auth(required_permissions={UNARY: ["project:create"]})])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x", metadata=_bearer(user_token(time.time(), ["project:read"])))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "project:create" in (raised.value.details() or "")
    allowed = _bearer(user_token(time.time(), ["project:create"]))
    assert (await client.unary(b"x", metadata=allowed)).split(b"|")[1] == b"user-1"


async def test_a_seed_hs256_service_token_works_only_where_its_secret_is_configured(
    echo: EchoFactory,
) -> None:
    """The seed's shared-secret tokens are a legacy opt-in (``service_token_secret``)."""
    client = await echo([_auth()])
    metadata = (("x-service-token", service_token(time.time())),)
    assert (await client.unary(b"x", metadata=metadata)).split(b"|")[1] == b"billing"


async def test_a_user_token_is_not_accepted_as_a_service_token(echo: EchoFactory) -> None:
    """Token kinds do not mix: an access token in x-service-token is refused even if it verifies."""
    client = await echo([_auth()])
    claims = {"sub": "user-1", "typ": "access", "permissions": ["everything"]}
    wrong = (("x-service-token", hs256_token(SERVICE_SECRET, claims, now=time.time())),)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x", metadata=wrong)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "wrong_token_type" in (raised.value.details() or "")


async def test_es256_tokens_verify_against_published_keys(echo: EchoFactory) -> None:
    """Asymmetric user tokens verify through a KeySource holding the public JWK."""
    key = SigningKey.generate("ES256")
    now = time.time()
    token = key.sign(
        {
            "sub": "user-9",
            "typ": "access",
            "iss": "zoptal-auth",
            "aud": "zoptal",
            "iat": int(now),
            "exp": int(now + 60),
            "permissions": [],
        }
    )
    client = await echo([_auth(jwt_secret=None, key_source=StaticKeys([key.public_jwk()]))])
    assert (await client.unary(b"x", metadata=_bearer(token))).split(b"|")[1] == b"user-9"


async def test_health_checks_need_no_credentials() -> None:
    """grpc.health.v1 is excluded by default, so probes work without tokens."""
    server = grpc.aio.server(interceptors=[_auth()])
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)


class CountingVerifier:
    def __init__(self, inner: TokenVerifier) -> None:
        self.inner = inner
        self.calls = 0

    async def verify(self, token: str, *, expected_type: str | None = None) -> VerifiedToken:
        self.calls += 1
        return await self.inner.verify(token, expected_type=expected_type)


async def test_verified_tokens_are_cached_until_they_expire() -> None:
    """The same token verifies once; after its exp (fake clock) it is verified again."""
    clock = FakeClock()
    verifier = CountingVerifier(
        TokenVerifier(
            StaticKeys(hmac_secret=USER_SECRET),
            issuer="zoptal-auth",
            audience="zoptal",
            algorithms=["HS256"],
            clock=clock,
            leeway=0,
        )
    )
    auth = AuthInterceptor(user_verifier=verifier, clock=clock)
    token = user_token(clock.time(), ttl=60)
    metadata = _bearer(token)
    for _ in range(3):
        assert (await auth.authenticate(metadata)).subject == "user-1"
    assert verifier.calls == 1
    clock.advance(61)
    with pytest.raises(Exception, match="expired"):
        await auth.authenticate(metadata)
    assert verifier.calls == 2


async def test_the_token_cache_is_bounded() -> None:
    """More distinct tokens than the cache holds evict the oldest entries."""
    clock = FakeClock()
    auth = _auth(cache_size=2, clock=clock)
    for index in range(5):
        token = user_token(clock.time(), sub=f"user-{index}")
        await auth.authenticate(_bearer(token))
    assert len(auth.cache) == 2


async def test_credentials_of_one_call_never_serve_the_next(echo: EchoFactory) -> None:
    """A call without a token after an authenticated one on the same channel is refused."""
    client = await echo([_auth()])
    assert (await client.unary(b"x", metadata=_bearer(user_token(time.time())))).startswith(b"x|")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"x")
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_service_tokens_without_expiry_are_refused_unless_allowed() -> None:
    """A seed-style token signed without exp is refused by default, accepted on opt-in."""
    import jwt

    token = jwt.encode({"serviceId": "billing", "permissions": []}, SERVICE_SECRET, "HS256")
    metadata = (("x-service-token", token),)
    with pytest.raises(Exception, match="malformed"):
        await _auth().authenticate(metadata)
    principal = await _auth(service_tokens_expire=False).authenticate(metadata)
    assert principal.subject == "billing"
    assert principal.kind == "service"


def _issuer_signed(key: SigningKey, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "sub": "sa-1",
        "serviceId": "sa-1",
        "serviceName": "billing",
        "typ": "service",
        "permissions": ["user:read"],
        "iss": "zoptal-auth",
        "aud": "zoptal",
        "iat": now,
        "exp": now + 60,
    }
    return key.sign({**base, **claims})


async def test_issuer_signed_service_tokens_verify_through_the_same_keys(echo: EchoFactory) -> None:
    """Service tokens take the user tokens' path: the issuer's public keys, iss and aud."""
    key = SigningKey.generate("ES256")
    keys = StaticKeys([key.public_jwk()])
    client = await echo([_auth(jwt_secret=None, service_token_secret=None, key_source=keys)])
    good = (("x-service-token", _issuer_signed(key)),)
    assert (await client.unary(b"x", metadata=good)).split(b"|")[1] == b"sa-1"
    for wrong, reason in (
        (_issuer_signed(key, iss="someone-else"), "wrong_issuer"),
        (_issuer_signed(key, aud="other-platform"), "wrong_audience"),
        (_issuer_signed(SigningKey.generate("ES256")), "unknown_key"),
        (hs256_token(SERVICE_SECRET, {"serviceId": "billing"}, now=time.time()), "algorithm"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.unary(b"x", metadata=(("x-service-token", wrong),))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason in (raised.value.details() or "")


async def test_a_roles_claim_in_a_service_token_is_never_a_role() -> None:
    """roles:["admin"] in a service token gives no role: a service holds only its permissions."""
    key = SigningKey.generate("ES256")
    auth = _auth(
        jwt_secret=None, service_token_secret=None, key_source=StaticKeys([key.public_jwk()])
    )
    token = _issuer_signed(key, roles=["admin"])
    principal = await auth.authenticate((("x-service-token", token),))
    assert principal.kind == "service"
    assert principal.roles == frozenset()
    seed_style = hs256_token(
        SERVICE_SECRET, {"serviceId": "billing", "roles": ["admin"]}, now=time.time()
    )
    principal = await _auth().authenticate((("x-service-token", seed_style),))
    assert principal.roles == frozenset()
