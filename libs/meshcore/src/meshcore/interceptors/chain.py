"""``build_server_chain``: the documented interceptor order, fused into one grpc interceptor.

Order, outermost first: call context (request id, deadline, traceparent into ContextVars),
tracing, logging, metrics, auth, peer binding (only with ``MTLS_PORT``: a service token must
match the client certificate), rate limit, error mapping. Tracing sees everything; logging and
metrics see the final status of rejected calls too; auth runs before rate limiting so limits are
per principal; error mapping is innermost so every exception the handler raises becomes a status
before the outer layers look at it.

``InterceptorChain`` is a single ``grpc.aio.ServerInterceptor`` that wraps each method's handler
with all layers once and caches it: grpc then awaits one interceptor per call instead of seven,
and the six admission/observer layers run inside one coroutine (``meshcore.interceptors.hooks``),
with error mapping nested inside them.

``build_server_chain`` takes the service's ``ServiceSettings`` (``meshcore.settings``) and, for
what settings do not carry, one small options object per layer (``meshcore.interceptors.options``:
``AuthOptions``, ``RateLimitOptions``, ``LoggingOptions``); a field they set wins over the
settings. Redis-backed rate limits are used when ``REDIS_URL`` is set, in-process ones otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypedDict

import grpc
import grpc.aio
from opentelemetry.trace import TracerProvider
from prometheus_client import REGISTRY, CollectorRegistry

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import begin_call
from meshcore.interceptors.auth import AuthInterceptor
from meshcore.interceptors.base import (
    Handler,
    RpcMethod,
    ServerInterceptor,
    handler_with_behavior,
    innermost_behavior,
    nest,
)
from meshcore.interceptors.call_context import CallContextInterceptor
from meshcore.interceptors.errors import ErrorMappingInterceptor
from meshcore.interceptors.hooks import AdmissionInterceptor, ObservingInterceptor, fused_behavior
from meshcore.interceptors.limiters import RateLimiter
from meshcore.interceptors.logging import LoggingInterceptor
from meshcore.interceptors.metrics import MetricsInterceptor
from meshcore.interceptors.options import (
    FROM_SETTINGS,
    AuthOptions,
    FromSettings,
    LoggingOptions,
    RateLimitOptions,
    chosen,
)
from meshcore.interceptors.peer_binding import PeerBindingInterceptor
from meshcore.interceptors.rate_limit import RateLimitInterceptor
from meshcore.interceptors.tracing import TracingInterceptor
from meshcore.jwt import KeySource
from meshcore.revocation import RevocationCheck
from meshcore.settings import ServiceSettings

__all__ = [
    "FROM_SETTINGS",
    "AuthOptions",
    "ChainOverrides",
    "InterceptorChain",
    "LoggingOptions",
    "RateLimitOptions",
    "build_server_chain",
    "service_chain",
]


class Closeable(Protocol):
    async def close(self) -> None: ...


_DEFAULT_AUTH = AuthOptions()
_DEFAULT_RATE_LIMIT = RateLimitOptions()
_DEFAULT_LOGGING = LoggingOptions()


class InterceptorChain(ServerInterceptor):
    """Several ``ServerInterceptor``s (outermost first) applied as one grpc interceptor."""

    def __init__(
        self, layers: Sequence[ServerInterceptor], *, owned: Sequence[Closeable] = ()
    ) -> None:
        super().__init__()
        self.layers = tuple(layers)
        self._owned = tuple(owned)
        self._cache: dict[str, tuple[Handler, Handler]] = {}

    async def close(self) -> None:
        """Release what the chain opened itself (the Redis rate limiter's connections);
        ``MeshServer`` calls it once the server has stopped. What callers passed in is theirs."""
        owned, self._owned = self._owned, ()
        for resource in owned:
            await resource.close()

    def layer(self, kind: type[ServerInterceptor]) -> Any:
        """The first layer of ``kind`` (e.g. ``chain.layer(MetricsInterceptor).get_metrics()``)."""
        for layer in self.layers:
            if isinstance(layer, kind):
                return layer
        raise LookupError(f"no {kind.__name__} in this chain")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        begin_call(handler_call_details.invocation_metadata)
        method_name: str = handler_call_details.method
        cached = self._cache.get(method_name)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(handler, method_name)
        self._cache[method_name] = (handler, wrapped)
        return wrapped

    def wrap(self, handler: Handler, method_name: str) -> Handler:
        """``handler`` behind every layer that applies to the method.

        The leading layers that only admit or only observe (call context, tracing, logging,
        metrics, auth, rate limit) run fused in one coroutine; the rest nest as usual.
        """
        rpc = RpcMethod.parse(method_name, handler)
        active = [layer for layer in self.layers if layer.applies_to(rpc)]
        if not active:
            return handler
        outer, observers, inner_checks, rest = _split_fusable(active)
        fused = bool(outer or observers or inner_checks)
        errors = rest[0] if fused and len(rest) == 1 else None
        if isinstance(errors, ErrorMappingInterceptor):
            # Error mapping alone after the fusable layers, as in the default chain, runs in the
            # fused coroutine too: one coroutine per call instead of two.
            rest = []
        else:
            errors = None
        behavior = nest(rest, innermost_behavior(handler, rpc), rpc)
        if fused:
            behavior = fused_behavior(outer, observers, inner_checks, behavior, rpc, errors)
        return handler_with_behavior(handler, rpc, behavior)


def _split_fusable(
    layers: Sequence[ServerInterceptor],
) -> tuple[
    list[AdmissionInterceptor],
    list[ObservingInterceptor],
    list[AdmissionInterceptor],
    list[ServerInterceptor],
]:
    """The longest prefix shaped admissions, observers, admissions; and what follows it."""
    index = 0
    outer: list[AdmissionInterceptor] = []
    observers: list[ObservingInterceptor] = []
    inner: list[AdmissionInterceptor] = []
    while index < len(layers) and isinstance(layers[index], AdmissionInterceptor):
        outer.append(layers[index])  # type: ignore[arg-type]
        index += 1
    while index < len(layers) and isinstance(layers[index], ObservingInterceptor):
        observers.append(layers[index])  # type: ignore[arg-type]
        index += 1
    while index < len(layers) and isinstance(layers[index], AdmissionInterceptor):
        inner.append(layers[index])  # type: ignore[arg-type]
        index += 1
    return outer, observers, inner, list(layers[index:])


def build_server_chain(
    settings: ServiceSettings | None = None,
    *,
    auth: AuthOptions | None = _DEFAULT_AUTH,
    rate_limit: RateLimitOptions | None = _DEFAULT_RATE_LIMIT,
    logging: LoggingOptions = _DEFAULT_LOGGING,
    metrics_registry: CollectorRegistry = REGISTRY,
    tracer_provider: TracerProvider | FromSettings | None = FROM_SETTINGS,
    clock: Clock = SYSTEM_CLOCK,
) -> list[grpc.aio.ServerInterceptor]:
    """The full server chain for a service, as a one-element list for ``grpc.aio.server``.

    ``auth`` or ``rate_limit`` None leaves that layer out. ``tracer_provider`` from settings is
    ``meshcore.observability.tracing.global_tracer_provider`` (built once from ``OTEL_*``; None,
    so tracing off, when they are unset).
    """
    base = settings if settings is not None else ServiceSettings()
    if isinstance(tracer_provider, FromSettings):
        from meshcore.observability.tracing import global_tracer_provider

        tracer_provider = global_tracer_provider(base.service_name)
    log_level = logging.log_level
    if isinstance(log_level, FromSettings):
        log_level = base.log_level
    owned: list[Closeable] = []
    layers: list[ServerInterceptor] = [
        CallContextInterceptor(clock=clock),
        TracingInterceptor(tracer_provider),
        LoggingInterceptor(
            log_level,
            logging.log_requests,
            logging.log_responses,
            logging.log_errors,
            logging.sensitive_fields,
        ),
        MetricsInterceptor(registry=metrics_registry),
    ]
    if auth is not None:
        auth_layer = _auth_layer(settings, auth, clock)
        layers.append(auth_layer)
        if base.mtls_port:
            # Only a server with an mTLS port gets the layer: without one it would cost every
            # call something, and every service token would be refused.
            layers.append(
                PeerBindingInterceptor(base.tls_trust_domain, applies_to=auth_layer.applies_to)
            )
    if rate_limit is not None:
        layers.append(_rate_limit_layer(base, rate_limit, metrics_registry, clock, owned))
    layers.append(ErrorMappingInterceptor())
    return [InterceptorChain(layers, owned=owned)]


class ChainOverrides(TypedDict, total=False):
    """What a test changes of a service's chain (``service_chain``)."""

    key_source: KeySource | FromSettings
    """The keys the test signs tokens with."""
    metrics_registry: CollectorRegistry
    """A registry of the test's own, so that servers in one process do not share series."""


def service_chain(
    settings: ServiceSettings,
    revocations: RevocationCheck | None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    key_source: KeySource | FromSettings = FROM_SETTINGS,
    metrics_registry: CollectorRegistry = REGISTRY,
) -> list[grpc.aio.ServerInterceptor]:
    """A service's production chain: all from its settings, refusing tokens ``revocations``
    knows revoked (its apps' ``interceptors(**ChainOverrides)``)."""
    return build_server_chain(
        settings,
        auth=AuthOptions(key_source=key_source, revocations=revocations),
        metrics_registry=metrics_registry,
        clock=clock,
    )


def _auth_layer(
    settings: ServiceSettings | None, options: AuthOptions, clock: Clock
) -> AuthInterceptor:
    # Without settings the layer trusts only what the options give: no JWKS, no issuer or
    # audience check (ServiceSettings' defaults would name the platform's own).
    key_source = options.key_source
    if isinstance(key_source, FromSettings):
        key_source = None
        if settings is not None and settings.auth_jwks_url and options.verifier is None:
            from meshcore.jwks import RemoteJwks

            key_source = RemoteJwks(settings.auth_jwks_url, clock=clock)
    return AuthInterceptor(
        chosen(options.jwt_secret, settings.jwt_secret if settings is not None else None),
        options.service_token_secret,
        options.excluded_methods,
        options.required_permissions,
        key_source=key_source,
        user_verifier=options.verifier,
        service_verifier=options.service_verifier,
        issuer=chosen(options.issuer, settings.jwt_issuer if settings is not None else None),
        audience=chosen(options.audience, settings.jwt_audience if settings is not None else None),
        revocations=options.revocations,
        clock=clock,
    )


def _rate_limit_layer(
    settings: ServiceSettings,
    options: RateLimitOptions,
    registry: CollectorRegistry,
    clock: Clock,
    owned: list[Closeable],
) -> RateLimitInterceptor:
    window = chosen(options.window_ms, settings.rate_limit_window_ms)
    limit = chosen(options.max_requests, settings.rate_limit_max_requests)
    service_limit = chosen(options.service_max_requests, settings.rate_limit_service_max_requests)
    limiter = options.limiter
    service_limiter: RateLimiter | None = None
    url = chosen(options.redis_url, settings.redis_url)
    if limiter is None and url:
        from meshcore.interceptors.limiters import RedisRateLimiter

        # One budget per service: replicas of a service share it, other services do not.
        service = settings.service_name
        prefix = f"meshcore:ratelimit:{service}:"
        redis_limiter = RedisRateLimiter.from_url(
            url, window, limit, prefix=prefix, client_name=f"meshcore-ratelimit-{service}"
        )
        service_limiter = redis_limiter.sharing_connections(
            service_limit, prefix=f"{prefix}services:"
        )
        limiter = redis_limiter
        owned.append(redis_limiter)
    return RateLimitInterceptor(
        window,
        limit,
        options.key_generator,
        limiter=limiter,
        service_max_requests=service_limit,
        service_limiter=service_limiter,
        fail_mode=chosen(options.fail_mode, settings.rate_limit_fail_mode),
        excluded_methods=options.excluded_methods,
        trusted_proxy_hops=settings.trusted_proxy_hops,
        # Methods excluded from auth (Login, RegisterUser) stay limited, per peer address:
        # they are exactly where guessing passwords would happen.
        registry=registry,
        clock=clock,
    )
