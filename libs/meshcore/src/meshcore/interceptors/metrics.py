"""``MetricsInterceptor``: the Prometheus series gRPC dashboards already use.

Server: ``grpc_server_started_total``, ``grpc_server_handled_total{grpc_code}``,
``grpc_server_handling_seconds`` (histogram), ``grpc_server_msg_received_total``,
``grpc_server_msg_sent_total``, all labelled ``grpc_service``, ``grpc_method``, ``grpc_type``
(the go-grpc-prometheus names). Client twins (``grpc_client_*``) come from
``MetricsClientInterceptor`` in ``meshcore.interceptors.client_metrics``.

Registry: by default everything goes to ``prometheus_client.REGISTRY`` (exported here as
``REGISTRY``), which ``meshcore.server.MeshServer`` serves on ``/metrics`` at ``METRICS_PORT``.
Pass ``registry=`` for an isolated one (tests) and give the same one to the server.

Speed: each method's label children are bound once, when its handler is first wrapped, and each
status code's child once per method, so a call never does a label lookup.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from meshcore.errors import MeshError
from meshcore.interceptors.base import Behavior, RpcMethod, ServerInterceptor

__all__ = [
    "DEFAULT_BUCKETS",
    "REGISTRY",
    "MetricsInterceptor",
    "ServerMetrics",
    "per_registry",
    "status_code_of",
]

DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LABELS = ("grpc_service", "grpc_method", "grpc_type")

T = TypeVar("T")
_families: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def per_registry(registry: CollectorRegistry, name: str, build: Callable[[], T]) -> T:
    """One metric family per registry and name, however many interceptors share the registry."""
    families = _families.setdefault(registry, {})
    if name not in families:
        families[name] = build()
    family: T = families[name]
    return family


def status_code_of(error: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status a call ends with when ``error`` escapes the handler chain."""
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    if isinstance(error, MeshError):
        return error.code.name
    return "UNKNOWN"


def _ok_code(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


class ServerMetrics:
    """The five server families in one registry."""

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server", _LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code",
            (*_LABELS, "grpc_code"),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from receiving an RPC to sending its status",
            _LABELS,
            buckets=buckets,
            registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received",
            "Messages received by the server",
            _LABELS,
            registry=registry,
        )
        self.sent = Counter(
            "grpc_server_msg_sent", "Messages sent by the server", _LABELS, registry=registry
        )


class _MethodSeries:
    """One method's pre-bound children; handled children bound lazily per status code."""

    __slots__ = ("_handled", "_labels", "handled_by_code", "received", "seconds", "sent", "started")

    def __init__(self, metrics: ServerMetrics, rpc: RpcMethod) -> None:
        labels = (rpc.service, rpc.name, rpc.rpc_type)
        self._labels = labels
        self._handled = metrics.handled
        self.started = metrics.started.labels(*labels)
        self.seconds = metrics.handling_seconds.labels(*labels)
        self.received = metrics.received.labels(*labels)
        self.sent = metrics.sent.labels(*labels)
        self.handled_by_code: dict[str, Any] = {"OK": metrics.handled.labels(*labels, "OK")}

    def finish(self, code: str, started_at: float) -> None:
        self.seconds.observe(time.perf_counter() - started_at)
        child = self.handled_by_code.get(code)
        if child is None:
            child = self.handled_by_code[code] = self._handled.labels(*self._labels, code)
        child.inc()


class MetricsInterceptor(ServerInterceptor):
    """Counts and times every call; ``get_metrics()`` summarises them as in the seed."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry = REGISTRY,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__()
        self.registry = registry
        self._metrics = per_registry(
            registry, "grpc_server", lambda: ServerMetrics(registry, buckets)
        )
        self._series: dict[str, _MethodSeries] = {}

    def applies_to(self, rpc: RpcMethod) -> bool:
        self._series.setdefault(rpc.full_name, _MethodSeries(self._metrics, rpc))
        return True

    async def intercept(
        self,
        method: Behavior,
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: RpcMethod,
    ) -> Any:
        series = self._series[rpc.full_name]
        series.started.inc()
        started_at = time.perf_counter()
        if rpc.request_streaming:
            request_or_iterator = _counted(request_or_iterator, series.received)
        else:
            series.received.inc()
        try:
            result = await method(request_or_iterator, context)
        except BaseException as error:
            series.finish(status_code_of(error, context), started_at)
            raise
        if rpc.response_streaming:
            return self._watch(result, series, started_at, context)
        series.sent.inc()
        series.finish(_ok_code(context), started_at)
        return result

    async def _watch(
        self,
        responses: AsyncIterator[Any],
        series: _MethodSeries,
        started_at: float,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        sent = series.sent
        try:
            async for response in responses:
                sent.inc()
                yield response
        except BaseException as error:
            series.finish(status_code_of(error, context), started_at)
            raise
        series.finish(_ok_code(context), started_at)

    def get_metrics(self) -> dict[str, Any]:
        """Totals and per-method counts, latency and errors (the seed's ``getMetrics()``)."""
        methods: dict[str, dict[str, Any]] = {}
        for family in (self._metrics.started, self._metrics.handled):
            for metric in family.collect():
                for sample in metric.samples:
                    if not sample.name.endswith("_total"):
                        continue
                    labels = sample.labels
                    name = f"/{labels['grpc_service']}/{labels['grpc_method']}"
                    entry = methods.setdefault(
                        name, {"started": 0, "handled": {}, "errors": 0, "seconds_sum": 0.0}
                    )
                    if "grpc_code" in labels:
                        entry["handled"][labels["grpc_code"]] = int(sample.value)
                        if labels["grpc_code"] != "OK":
                            entry["errors"] += int(sample.value)
                    else:
                        entry["started"] = int(sample.value)
        for metric in self._metrics.handling_seconds.collect():
            for sample in metric.samples:
                if sample.name.endswith("_sum"):
                    name = f"/{sample.labels['grpc_service']}/{sample.labels['grpc_method']}"
                    if name in methods:
                        methods[name]["seconds_sum"] = sample.value
        for entry in methods.values():
            finished = sum(entry["handled"].values())
            entry["average_ms"] = 1000 * entry["seconds_sum"] / finished if finished else 0.0
        return {
            "requests_total": sum(entry["started"] for entry in methods.values()),
            "errors_total": sum(entry["errors"] for entry in methods.values()),
            "methods": methods,
        }


async def _counted(requests: AsyncIterator[Any], counter: Any) -> AsyncIterator[Any]:
    async for request in requests:
        counter.inc()
        yield request
