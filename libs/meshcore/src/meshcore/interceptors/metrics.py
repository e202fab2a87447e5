"""``MetricsInterceptor``: the Prometheus series gRPC dashboards already use.

Server: ``grpc_server_started_total``, ``grpc_server_handled_total{grpc_code}``,
``grpc_server_handling_seconds`` (histogram), ``grpc_server_msg_received_total``,
``grpc_server_msg_sent_total``, all labelled ``grpc_service``, ``grpc_method``, ``grpc_type``
(the go-grpc-prometheus names). Client twins (``grpc_client_*``) come from
``MetricsClientInterceptor`` in ``meshcore.interceptors.client_metrics``.

Registry: by default everything goes to ``prometheus_client.REGISTRY`` (exported here as
``REGISTRY``), which ``meshcore.server.MeshServer`` serves on ``/metrics`` at ``METRICS_PORT``.
Pass ``registry=`` for an isolated one (tests) and give the same one to the server.

Speed: each method's series is looked up once, when its handler is first wrapped, and a call only
adds to plain integers; ``ServerMetrics`` is a custom collector that turns them into the
Prometheus families when scraped. No label lookup and no lock per call.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from meshcore.interceptors.base import RpcMethod
from meshcore.interceptors.hooks import CallRecord, ObservingInterceptor
from meshcore.interceptors.status import status_code_of
from meshcore.observability.registry import per_registry

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


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


class _MethodSeries:
    """One method's counters as plain numbers: a call costs a few integer additions.

    (A ``prometheus_client`` child costs a lock and a check per update, about 1 µs each; five
    per call added up.) The interceptor runs on the event loop only, so no lock is needed; a
    scrape from another thread may see one family a call ahead of another, never a torn value.
    """

    __slots__ = ("buckets", "handled", "labels", "received", "seconds_sum", "sent", "started")

    def __init__(self, labels: tuple[str, str, str], bucket_count: int) -> None:
        self.labels = labels
        self.started = 0
        self.received = 0
        self.sent = 0
        self.handled: dict[str, int] = {}
        self.buckets = [0] * (bucket_count + 1)  # per bucket, not cumulative; last is +Inf
        self.seconds_sum = 0.0


class ServerMetrics:
    """The five server families of one registry, collected at scrape time from plain counters."""

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.series: dict[str, _MethodSeries] = {}
        registry.register(self)

    def series_for(self, rpc: RpcMethod) -> _MethodSeries:
        series = self.series.get(rpc.full_name)
        if series is None:
            labels = (rpc.service, rpc.name, rpc.rpc_type)
            series = self.series[rpc.full_name] = _MethodSeries(labels, len(self.bounds))
        return series

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        all_series = list(self.series.values())
        started = CounterMetricFamily(
            "grpc_server_started", "RPCs started on the server", labels=_LABELS
        )
        handled = CounterMetricFamily(
            "grpc_server_handled",
            "RPCs completed on the server, by status code",
            labels=(*_LABELS, "grpc_code"),
        )
        received = CounterMetricFamily(
            "grpc_server_msg_received", "Messages received by the server", labels=_LABELS
        )
        sent = CounterMetricFamily(
            "grpc_server_msg_sent", "Messages sent by the server", labels=_LABELS
        )
        seconds = HistogramMetricFamily(
            "grpc_server_handling_seconds",
            "Time from receiving an RPC to sending its status",
            labels=_LABELS,
        )
        for series in all_series:
            labels = list(series.labels)
            started.add_metric(labels, series.started)
            received.add_metric(labels, series.received)
            sent.add_metric(labels, series.sent)
            for code, count in list(series.handled.items()):
                handled.add_metric([*labels, code], count)
            cumulative, running = [], 0
            for bound, count in zip((*self.bounds, math.inf), series.buckets, strict=True):
                running += count
                cumulative.append((_bucket_label(bound), running))
            seconds.add_metric(labels, cumulative, series.seconds_sum)
        yield from (started, handled, seconds, received, sent)


class MetricsInterceptor(ObservingInterceptor):
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
        self._bounds = self._metrics.bounds

    def applies_to(self, rpc: RpcMethod) -> bool:
        self._series[rpc.full_name] = self._metrics.series_for(rpc)
        return True

    def start(
        self, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod, record: CallRecord
    ) -> _MethodSeries:
        series = self._series[rpc.full_name]
        series.started += 1
        return series

    def finish(
        self, state: _MethodSeries, record: CallRecord, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        elapsed = time.perf_counter() - record.started_at
        # Message counts land when the call ends (a long stream reports them at its end).
        state.received += record.messages_received
        state.sent += record.messages_sent
        state.buckets[bisect_left(self._bounds, elapsed)] += 1
        state.seconds_sum += elapsed
        handled = state.handled
        handled[record.code] = handled.get(record.code, 0) + 1

    def get_metrics(self) -> dict[str, Any]:
        """Totals and per-method counts, latency and errors (the seed's ``getMetrics()``)."""
        methods: dict[str, dict[str, Any]] = {}
        for name, series in list(self._metrics.series.items()):
            handled = dict(series.handled)
            finished = sum(handled.values())
            errors = finished - handled.get("OK", 0)
            methods[name] = {
                "type": series.labels[2],
                "started": series.started,
                "handled": handled,
                "errors": errors,
                "messages_received": series.received,
                "messages_sent": series.sent,
                "average_ms": 1000 * series.seconds_sum / finished if finished else 0.0,
            }
        return {
            "requests_total": sum(entry["started"] for entry in methods.values()),
            "errors_total": sum(entry["errors"] for entry in methods.values()),
            "methods": methods,
        }
