"""``build_client_interceptors``: the default client stack, outermost first.

Its own module, above the interceptors it assembles (metrics, tracing, propagation), so that the
base module ``meshcore.interceptors.client`` imports none of them.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.interceptors.client import (
    ClientInterceptor,
    ContextPropagationInterceptor,
    TokenProvider,
    channel_interceptors,
)
from meshcore.interceptors.client_metrics import MetricsClientInterceptor
from meshcore.interceptors.client_tracing import TracingClientInterceptor

__all__ = ["build_client_interceptors"]


def build_client_interceptors(
    *,
    service_token: str | TokenProvider | None = None,
    default_timeout: float | None = None,
    tracer_provider: Any | None = None,
    metrics_registry: Any | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> list[grpc.aio.ClientInterceptor]:
    """Channel interceptors, outermost first: metrics, tracing (when on), propagation."""
    interceptors: list[ClientInterceptor] = []
    if metrics_registry is not False:
        interceptors.append(
            MetricsClientInterceptor(registry=metrics_registry)
            if metrics_registry is not None
            else MetricsClientInterceptor()
        )
    if tracer_provider is not None:
        interceptors.append(TracingClientInterceptor(tracer_provider))
    interceptors.append(
        ContextPropagationInterceptor(
            default_timeout=default_timeout, service_token=service_token, clock=clock
        )
    )
    return channel_interceptors(*interceptors)
