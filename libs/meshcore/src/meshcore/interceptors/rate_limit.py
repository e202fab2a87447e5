"""``RateLimitInterceptor``: a call budget per caller, in process or shared through Redis.

The key is the authenticated principal (``user:<id>`` / ``service:<id>``, so it runs after auth)
and falls back to the client's address (``meshcore.interceptors.client_address``: the peer, or
with ``trusted_proxy_hops`` what the trusted proxies put in ``x-forwarded-for``, so that behind
Istio's sidecar all clients are not one budget); ``key_generator`` replaces that. Over the limit
a call ends with RESOURCE_EXHAUSTED carrying ``google.rpc.RetryInfo`` and a ``retry-after``
trailer.

Platform services get their own, larger budget (``service_max_requests``): a service calls on
behalf of every user of its own service (Project asks Billing for each user's CreateProject), so
one user's budget would let one busy peer throttle the platform for everyone. The service budget
still bounds a runaway peer (a retry storm, a compromised service).

When the limiter's backend (Redis) fails, ``fail_mode`` decides, explicitly: ``"open"`` lets the
call through, ``"closed"`` refuses it with UNAVAILABLE. Either way the failure is counted in
``meshcore_rate_limit_backend_errors_total{outcome}`` and logged (at most once per
``log_interval`` seconds, so an outage does not flood the log).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import grpc.aio
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import current_call, current_principal
from meshcore.errors import ResourceExhausted, Unavailable
from meshcore.interceptors.base import RpcMethod, call_metadata
from meshcore.interceptors.client_address import client_address
from meshcore.interceptors.errors import abort_with
from meshcore.interceptors.hooks import AdmissionInterceptor
from meshcore.interceptors.limiters import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from meshcore.observability.registry import counter
from meshcore.reasons import Reason

__all__ = [
    "RATE_LIMITED",
    "CallInfo",
    "FailMode",
    "KeyGenerator",
    "RateLimitInterceptor",
    "key_by_caller",
]

FailMode = Literal["open", "closed"]
RATE_LIMITED = Reason.RATE_LIMITED
"""``ErrorInfo.reason`` of a call refused by the rate limit (any service)."""
RATE_LIMIT_MESSAGE = "rate limit exceeded"
_log = logging.getLogger("meshcore.interceptors.rate_limit")


@dataclass(slots=True)
class CallInfo:
    """What a key generator may look at; ``metadata`` is built only when asked for."""

    context: grpc.aio.ServicerContext[Any, Any]
    rpc: RpcMethod
    trusted_proxy_hops: int = 0

    @property
    def metadata(self) -> Mapping[str, str | bytes]:
        return dict(call_metadata(self.context))

    @property
    def peer(self) -> str:
        """The client's address: the peer's, or the one the trusted proxies forwarded."""
        return client_address(self.context, self.trusted_proxy_hops)


KeyGenerator = Callable[[CallInfo], str]


def key_by_caller(call: CallInfo) -> str:
    """The authenticated principal, else the caller's IP address (not its ephemeral port)."""
    principal = current_principal()
    if principal is not None:
        return principal.key
    return f"peer:{call.peer}"


class _BackendErrors:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = _backend_error_counter(registry)

    @cached_property
    def allowed(self) -> Any:
        return self.counter.labels(outcome="allowed")

    @cached_property
    def refused(self) -> Any:
        return self.counter.labels(outcome="refused")


def _backend_error_counter(registry: CollectorRegistry) -> Counter:
    return counter(
        registry,
        "meshcore_rate_limit_backend_errors",
        "Rate-limit checks whose backend failed, by what was done with the call",
        ["outcome"],
    )


def rate_limit_rejections(registry: CollectorRegistry) -> Counter:
    return counter(
        registry,
        "meshcore_rate_limit_rejections",
        "Calls the rate limiter refused with RESOURCE_EXHAUSTED",
    )


class RateLimitInterceptor(AdmissionInterceptor):
    """Refuses calls over ``max_requests`` per sliding ``window_ms`` for one key.

    Calls of a service principal count against ``service_limiter``, else against a limiter of
    ``service_max_requests`` like the users' one, else against the users' limiter.
    """

    def __init__(
        self,
        window_ms: int = 60_000,
        max_requests: int = 1_000,
        key_generator: KeyGenerator = key_by_caller,
        *,
        limiter: RateLimiter | None = None,
        service_max_requests: int | None = None,
        service_limiter: RateLimiter | None = None,
        fail_mode: FailMode = "open",
        excluded_methods: frozenset[str] = frozenset(),
        trusted_proxy_hops: int = 0,
        registry: CollectorRegistry = REGISTRY,
        clock: Clock = SYSTEM_CLOCK,
        log_interval: float = 10.0,
    ) -> None:
        super().__init__()
        if fail_mode not in ("open", "closed"):
            raise ValueError("fail_mode must be 'open' or 'closed'")
        self._limiter: RateLimiter = limiter or InProcessRateLimiter(
            window_ms, max_requests, clock=clock
        )
        if service_limiter is None and service_max_requests is not None and limiter is None:
            service_limiter = InProcessRateLimiter(window_ms, service_max_requests, clock=clock)
        self._service_limiter: RateLimiter = service_limiter or self._limiter
        self._key_generator = key_generator
        self._fail_open = fail_mode == "open"
        self._excluded = excluded_methods
        if trusted_proxy_hops < 0:
            raise ValueError("trusted_proxy_hops must be >= 0")
        self._hops = trusted_proxy_hops
        self._errors = _BackendErrors(registry)
        self._rejections = rate_limit_rejections(registry)
        self._clock = clock
        self._log_interval = log_interval
        self._last_logged = -float("inf")

    def applies_to(self, rpc: RpcMethod) -> bool:
        return rpc.full_name not in self._excluded and not rpc.full_name.startswith(
            "/grpc.health.v1.Health/"
        )

    def admit(
        self, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod
    ) -> Awaitable[None] | None:
        principal = current_call().principal
        if self._key_generator is not key_by_caller:
            key = self._key_generator(CallInfo(context, rpc, self._hops))
        elif principal is not None:
            key = principal.key
        else:
            key = f"peer:{client_address(context, self._hops)}"
        limiter = (
            self._service_limiter
            if principal is not None and principal.is_service
            else self._limiter
        )
        if not isinstance(limiter, InProcessRateLimiter):
            if isinstance(limiter, RedisRateLimiter) and limiter.take_leased(key):
                return None  # admitted from this replica's lease: no coroutine, no round trip
            return self._admit_remote(limiter, key, context, rpc)
        # The in-process check never waits: no coroutine on the hot path.
        retry_after = limiter.refusal(key)
        if retry_after is None:
            return None
        self._rejections.inc()
        return abort_with(
            context,
            ResourceExhausted(RATE_LIMIT_MESSAGE, reason=RATE_LIMITED, retry_after=retry_after),
            rpc,
        )

    async def _admit_remote(
        self,
        limiter: RateLimiter,
        key: str,
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: RpcMethod,
    ) -> None:
        try:
            decision = await limiter.hit(key)
        except Exception as error:  # the backend is down: apply the configured choice
            self._backend_failed(error)
            if not self._fail_open:
                await abort_with(
                    context, Unavailable.of_dependency("redis", "rate limiter unavailable"), rpc
                )
            return
        if not decision.allowed:
            self._rejections.inc()
            await abort_with(
                context,
                ResourceExhausted(
                    RATE_LIMIT_MESSAGE, reason=RATE_LIMITED, retry_after=decision.retry_after
                ),
                rpc,
            )

    def _backend_failed(self, error: Exception) -> None:
        (self._errors.allowed if self._fail_open else self._errors.refused).inc()
        now = self._clock.monotonic()
        if now - self._last_logged >= self._log_interval:
            self._last_logged = now
            _log.warning(
                "rate limiter backend failed (%s): failing %s",
                type(error).__name__,
                "open" if self._fail_open else "closed",
                extra={"error": str(error)},
            )
