"""``MetricsClientInterceptor``: the ``grpc_client_*`` twins of the server series.

``grpc_client_started_total``, ``grpc_client_handled_total{grpc_code}``,
``grpc_client_handling_seconds``, ``grpc_client_msg_sent_total`` and
``grpc_client_msg_received_total`` (replies of unary-response calls; streamed replies are
consumed by the caller directly from the call object, which stays untouched).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from meshcore.interceptors.base import RpcMethod
from meshcore.interceptors.client import ClientInterceptor, when_finished
from meshcore.interceptors.metrics import DEFAULT_BUCKETS, per_registry

__all__ = ["ClientMetrics", "MetricsClientInterceptor"]

_LABELS = ("grpc_service", "grpc_method", "grpc_type")


class ClientMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_client_started", "RPCs started by clients", _LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_client_handled",
            "RPCs completed by clients, by status code",
            (*_LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_client_handling_seconds",
            "Time from starting an RPC to receiving its status",
            _LABELS,
            buckets=DEFAULT_BUCKETS,
            registry=registry,
        )
        self.sent = Counter(
            "grpc_client_msg_sent", "Messages sent by clients", _LABELS, registry=registry
        )
        self.received = Counter(
            "grpc_client_msg_received", "Messages received by clients", _LABELS, registry=registry
        )


class MetricsClientInterceptor(ClientInterceptor):
    """Counts and times outgoing calls; label children bound once per method."""

    def __init__(self, *, registry: CollectorRegistry = REGISTRY) -> None:
        self._metrics = per_registry(registry, "grpc_client", lambda: ClientMetrics(registry))
        self._children: dict[RpcMethod, tuple[Any, ...]] = {}

    def _bound(self, rpc: RpcMethod) -> tuple[Any, ...]:
        children = self._children.get(rpc)
        if children is None:
            labels = (rpc.service, rpc.name, rpc.rpc_type)
            metrics = self._metrics
            children = (
                metrics.started.labels(*labels),
                metrics.seconds.labels(*labels),
                metrics.sent.labels(*labels),
                metrics.received.labels(*labels),
                labels,
            )
            self._children[rpc] = children
        return children

    async def intercept(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        details: grpc.aio.ClientCallDetails,
        request_or_iterator: Any,
        rpc: RpcMethod,
    ) -> Any:
        started, seconds, sent, received, labels = self._bound(rpc)
        started.inc()
        started_at = time.perf_counter()
        if rpc.request_streaming:
            request_or_iterator = _counted(request_or_iterator, sent)
        else:
            sent.inc()
        handled = self._metrics.handled

        def finished(code: str) -> None:
            seconds.observe(time.perf_counter() - started_at)
            handled.labels(*labels, code).inc()
            if code == "OK" and not rpc.response_streaming:
                received.inc()

        try:
            call = await continuation(details, request_or_iterator)
        except grpc.aio.AioRpcError as error:
            finished(error.code().name)
            raise
        when_finished(call, finished)
        return call


async def _counted(requests: Any, counter: Any) -> AsyncIterator[Any]:
    if hasattr(requests, "__aiter__"):
        async for request in requests:
            counter.inc()
            yield request
    else:
        for request in requests:
            counter.inc()
            yield request
