"""build_server_chain: the documented order, fused into one interceptor, from keywords."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import grpc
import grpc.aio
import pytest
from meshcore.interceptors import (
    FROM_SETTINGS,
    AuthInterceptor,
    CallContextInterceptor,
    ErrorMappingInterceptor,
    InterceptorChain,
    LoggingInterceptor,
    MetricsInterceptor,
    RateLimitInterceptor,
    RateLimitOptions,
    TracingInterceptor,
    build_server_chain,
)
from meshcore.interceptors.options import FromSettings
from meshcore.settings import ServiceSettings
from prometheus_client import CollectorRegistry

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    HS256_AUTH,
    SERVICE,
    EchoFactory,
    settle,
    user_token,
)


def _chain(
    registry: CollectorRegistry,
    *,
    settings: ServiceSettings | None = None,
    max_requests: int | FromSettings = FROM_SETTINGS,
    excluded_methods: Iterable[str] = (),
) -> InterceptorChain:
    (chain,) = build_server_chain(
        settings,
        auth=replace(HS256_AUTH, excluded_methods=excluded_methods),
        rate_limit=RateLimitOptions(redis_url=None, max_requests=max_requests),
        metrics_registry=registry,
        tracer_provider=None,
    )
    assert isinstance(chain, InterceptorChain)
    return chain


def test_layers_follow_the_documented_order() -> None:
    """Context, tracing, logging, metrics, auth, rate limit, error mapping (outermost first)."""
    chain = _chain(CollectorRegistry())
    assert [type(layer) for layer in chain.layers] == [
        CallContextInterceptor,
        TracingInterceptor,
        LoggingInterceptor,
        MetricsInterceptor,
        AuthInterceptor,
        RateLimitInterceptor,
        ErrorMappingInterceptor,
    ]


async def test_a_full_chain_serves_authenticated_calls_and_counts_refusals(
    echo: EchoFactory,
) -> None:
    """A valid token passes every layer; a refused call is still counted by metrics."""
    registry = CollectorRegistry()
    client = await echo([_chain(registry, max_requests=100)])
    metadata = (("authorization", f"Bearer {user_token(time.time())}"),)
    assert (await client.unary(b"hi", metadata=metadata)).split(b"|")[1] == b"user-1"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"hi")
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"invalid", metadata=metadata)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await settle()
    labels = {"grpc_service": SERVICE, "grpc_method": "Unary", "grpc_type": "unary"}
    for code, count in (("OK", 1), ("UNAUTHENTICATED", 1), ("INVALID_ARGUMENT", 1)):
        value = registry.get_sample_value(
            "grpc_server_handled_total", {**labels, "grpc_code": code}
        )
        assert value == count


async def test_the_rate_limit_in_the_chain_is_per_principal(echo: EchoFactory) -> None:
    """The chain's limiter runs after auth: its key is the authenticated user."""
    client = await echo([_chain(CollectorRegistry(), max_requests=1)])
    metadata = (("authorization", f"Bearer {user_token(time.time())}"),)
    await client.unary(b"a", metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"a", metadata=metadata)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_methods_excluded_from_auth_are_still_rate_limited(echo: EchoFactory) -> None:
    """A public method (no credentials needed) is limited per peer, so it cannot be hammered."""
    from tests.unit.meshcore.interceptors.interceptor_testkit import UNARY

    client = await echo([_chain(CollectorRegistry(), max_requests=2, excluded_methods=[UNARY])])
    assert (await client.unary(b"a")).split(b"|")[1] == b"-"
    await client.unary(b"a")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"a")
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_chain_reads_service_settings() -> None:
    """From ServiceSettings: JWKS from AUTH_JWKS_URL, Redis limits when REDIS_URL is set."""
    from meshcore.interceptors.limiters import RedisRateLimiter
    from meshcore.jwks import RemoteJwks

    settings = ServiceSettings.from_env(
        {"REDIS_URL": "redis://127.0.0.1:6379/0", "RATE_LIMIT_MAX_REQUESTS": "7"}
    )
    (chain,) = build_server_chain(
        settings, metrics_registry=CollectorRegistry(), tracer_provider=None
    )
    assert isinstance(chain, InterceptorChain)
    auth = chain.layer(AuthInterceptor)
    assert isinstance(auth._user_verifier._keys._keys, RemoteJwks)
    limiter = chain.layer(RateLimitInterceptor)._limiter
    assert isinstance(limiter, RedisRateLimiter)
    assert limiter._limit == 7
    assert limiter._prefix == "meshcore:ratelimit:service:"


def test_peer_binding_sits_right_after_auth_only_when_mtls_is_configured(tmp_path: Path) -> None:
    """MTLS_PORT set: the binding layer follows auth; unset: the chain has no such layer."""
    from meshcore.interceptors import PeerBindingInterceptor

    pem = tmp_path / "stand-in.pem"  # settings check the files exist; the chain never reads them
    pem.touch()
    files = {"tls_cert_file": pem, "tls_key_file": pem, "tls_ca_file": pem}
    with_mtls = _chain(
        CollectorRegistry(),
        settings=ServiceSettings(mtls_port=4200, tls_trust_domain="ex.org", **files),
    )
    kinds = [type(layer) for layer in with_mtls.layers]
    assert kinds[kinds.index(AuthInterceptor) + 1] is PeerBindingInterceptor
    assert with_mtls.layer(PeerBindingInterceptor).trust_domain == "ex.org"
    without = _chain(CollectorRegistry(), settings=ServiceSettings(mtls_port=0, **files))
    assert PeerBindingInterceptor not in [type(layer) for layer in without.layers]
