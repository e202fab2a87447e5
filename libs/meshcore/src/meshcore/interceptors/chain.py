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

Everything can come from a ``ServiceSettings`` (``meshcore.settings``) or from keywords; keywords
win. Redis-backed rate limits are used when ``REDIS_URL`` is set, in-process ones otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import grpc
import grpc.aio
from prometheus_client import REGISTRY, CollectorRegistry

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import begin_call
from meshcore.interceptors.auth import AuthInterceptor, Verifier
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
from meshcore.interceptors.peer_binding import PeerBindingInterceptor
from meshcore.interceptors.rate_limit import (
    FailMode,
    KeyGenerator,
    RateLimitInterceptor,
    key_by_caller,
)
from meshcore.interceptors.tracing import TracingInterceptor
from meshcore.jwt import KeySource
from meshcore.redaction import DEFAULT_SENSITIVE_FIELDS
from meshcore.revocation import RevocationCheck

__all__ = ["InterceptorChain", "build_server_chain"]

_log = logging.getLogger("meshcore.interceptors.chain")


class Closeable(Protocol):
    async def close(self) -> None: ...


_UNSET: Any = object()


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


def _setting(settings: Any, name: str, default: Any) -> Any:
    return getattr(settings, name, default) if settings is not None else default


def build_server_chain(
    settings: Any = None,
    *,
    verifier: Verifier | None = None,
    service_verifier: Verifier | None = None,
    key_source: KeySource | None = _UNSET,
    jwt_secret: Any = _UNSET,
    service_token_secret: Any = None,
    issuer: str | None = _UNSET,
    audience: str | None = _UNSET,
    excluded_methods: Iterable[str] = (),
    required_permissions: Mapping[str, Iterable[str]] | None = None,
    auth: bool = True,
    revocations: RevocationCheck | None = None,
    window_ms: int | None = None,
    max_requests: int | None = None,
    key_generator: KeyGenerator = key_by_caller,
    rate_limiter: RateLimiter | None = None,
    redis_url: str | None = _UNSET,
    fail_mode: FailMode | None = None,
    rate_limit: bool = True,
    log_level: str | None = None,
    log_requests: bool = False,
    log_responses: bool = False,
    log_errors: bool = True,
    sensitive_fields: Iterable[str] = DEFAULT_SENSITIVE_FIELDS,
    metrics_registry: CollectorRegistry = REGISTRY,
    tracer_provider: Any = _UNSET,
    clock: Clock = SYSTEM_CLOCK,
) -> list[grpc.aio.ServerInterceptor]:
    """The full server chain for a service, as a one-element list for ``grpc.aio.server``.

    ``revocations`` (e.g. a started ``meshcore.revocation.RevocationFeed``) is asked by the auth
    layer on every authenticated call whether the caller's token was revoked.
    ``tracer_provider`` defaults to ``meshcore.observability.tracing.global_tracer_provider``
    (built once from ``OTEL_*``; None, so tracing off, when they are unset).
    """
    if tracer_provider is _UNSET:
        from meshcore.observability.tracing import global_tracer_provider

        tracer_provider = global_tracer_provider(_setting(settings, "service_name", "service"))
    owned: list[Closeable] = []
    layers: list[ServerInterceptor] = [
        CallContextInterceptor(clock=clock),
        TracingInterceptor(tracer_provider),
        LoggingInterceptor(
            log_level or _setting(settings, "log_level", "INFO"),
            log_requests,
            log_responses,
            log_errors,
            sensitive_fields,
        ),
        MetricsInterceptor(registry=metrics_registry),
    ]
    if auth:
        auth_layer = _auth_layer(
            settings,
            verifier,
            service_verifier,
            key_source,
            jwt_secret,
            service_token_secret,
            issuer,
            audience,
            excluded_methods,
            required_permissions,
            revocations,
            clock,
        )
        layers.append(auth_layer)
        if _setting(settings, "mtls_port", 0):
            # Only a server with an mTLS port gets the layer: without one it would cost every
            # call something, and every service token would be refused.
            trust_domain = _setting(settings, "tls_trust_domain", "zoptal.local")
            layers.append(PeerBindingInterceptor(trust_domain, applies_to=auth_layer.applies_to))
    if rate_limit:
        window = window_ms or _setting(settings, "rate_limit_window_ms", 60_000)
        limit = max_requests or _setting(settings, "rate_limit_max_requests", 1_000)
        url = _setting(settings, "redis_url", None) if redis_url is _UNSET else redis_url
        if rate_limiter is None and url:
            from meshcore.interceptors.limiters import RedisRateLimiter

            # One budget per service: replicas of a service share it, other services do not.
            service = _setting(settings, "service_name", "service")
            rate_limiter = RedisRateLimiter.from_url(
                url,
                window,
                limit,
                prefix=f"meshcore:ratelimit:{service}:",
                client_name=f"meshcore-ratelimit-{service}",
            )
            owned.append(rate_limiter)
        layers.append(
            RateLimitInterceptor(
                window,
                limit,
                key_generator,
                limiter=rate_limiter,
                fail_mode=fail_mode or _setting(settings, "rate_limit_fail_mode", "open"),
                trusted_proxy_hops=_setting(settings, "trusted_proxy_hops", 0),
                # Methods excluded from auth (Login, RegisterUser) stay limited, per peer address:
                # they are exactly where guessing passwords would happen.
                registry=metrics_registry,
                clock=clock,
            )
        )
    layers.append(ErrorMappingInterceptor())
    return [InterceptorChain(layers, owned=owned)]


def _auth_layer(
    settings: Any,
    verifier: Verifier | None,
    service_verifier: Verifier | None,
    key_source: KeySource | None,
    jwt_secret: Any,
    service_token_secret: Any,
    issuer: str | None,
    audience: str | None,
    excluded_methods: Iterable[str],
    required_permissions: Mapping[str, Iterable[str]] | None,
    revocations: RevocationCheck | None,
    clock: Clock,
) -> AuthInterceptor:
    if key_source is _UNSET:
        jwks_url = _setting(settings, "auth_jwks_url", None)
        if jwks_url and verifier is None:
            from meshcore.jwks import RemoteJwks

            key_source = RemoteJwks(jwks_url, clock=clock)
        else:
            key_source = None
    return AuthInterceptor(
        _setting(settings, "jwt_secret", None) if jwt_secret is _UNSET else jwt_secret,
        # Never read from settings: a shared service-token secret is a legacy opt-in (the seed's
        # HS256 tokens) that only an explicit argument turns on.
        service_token_secret,
        excluded_methods,
        required_permissions,
        key_source=key_source,
        user_verifier=verifier,
        service_verifier=service_verifier,
        issuer=_setting(settings, "jwt_issuer", None) if issuer is _UNSET else issuer,
        audience=_setting(settings, "jwt_audience", None) if audience is _UNSET else audience,
        revocations=revocations,
        clock=clock,
    )
