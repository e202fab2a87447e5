"""Client twins: grpc_client_* series and CLIENT spans for every RPC shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc.aio
import pytest
from meshcore.interceptors import ErrorMappingInterceptor, build_client_interceptors
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from tests.unit.meshcore.interceptors.interceptor_testkit import SERVICE, EchoFactory, settle


async def _items(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def _until(predicate: object, attempts: int = 500) -> None:
    # Client-side results are recorded from the call's done callback, a task after the status.
    for _ in range(attempts):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0)


async def test_client_series_count_every_shape(echo: EchoFactory) -> None:
    """started, handled{grpc_code}, sent and the histogram are kept per method and shape."""
    registry = CollectorRegistry()
    client = await echo(
        [ErrorMappingInterceptor()], build_client_interceptors(metrics_registry=registry)
    )
    await client.unary(b"a")
    [r async for r in client.server_stream(b"s")]
    await client.client_stream(_items(b"1", b"2"))
    [r async for r in client.bidi(_items(b"x"))]
    with pytest.raises(grpc.aio.AioRpcError):
        await client.unary(b"invalid")
    await settle()

    def value(name: str, method: str, kind: str, **extra: str) -> float:
        labels = {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": kind, **extra}
        return registry.get_sample_value(name, labels) or 0.0

    await _until(lambda: value("grpc_client_handling_seconds_count", "Unary", "unary") == 2)
    await _until(lambda: value("grpc_client_handling_seconds_count", "Bidi", "bidi_stream") == 1)
    assert value("grpc_client_started_total", "Unary", "unary") == 2
    assert value("grpc_client_handled_total", "Unary", "unary", grpc_code="OK") == 1
    invalid = {"grpc_code": "INVALID_ARGUMENT"}
    assert value("grpc_client_handled_total", "Unary", "unary", **invalid) == 1
    assert value("grpc_client_msg_received_total", "Unary", "unary") == 1
    ok = {"grpc_code": "OK"}
    assert value("grpc_client_handled_total", "ServerStream", "server_stream", **ok) == 1
    assert value("grpc_client_msg_sent_total", "ClientStream", "client_stream") == 2
    assert value("grpc_client_handled_total", "Bidi", "bidi_stream", **ok) == 1


async def test_client_spans_wrap_every_shape_and_mark_errors(echo: EchoFactory) -> None:
    """One CLIENT span per call, ended with the call's status; errors are marked."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = await echo(
        [ErrorMappingInterceptor()],
        build_client_interceptors(tracer_provider=provider, metrics_registry=False),
    )
    await client.unary(b"a")
    [r async for r in client.server_stream(b"s")]
    await client.client_stream(_items(b"1"))
    [r async for r in client.bidi(_items(b"x"))]
    with pytest.raises(grpc.aio.AioRpcError):
        await client.unary(b"invalid")
    await _until(lambda: len(exporter.get_finished_spans()) == 5)
    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == sorted(
        [f"{SERVICE}/Unary"] * 2
        + [f"{SERVICE}/ServerStream", f"{SERVICE}/ClientStream", f"{SERVICE}/Bidi"]
    )
    assert all(span.kind == SpanKind.CLIENT for span in spans)
    failed = [span for span in spans if span.status.status_code == StatusCode.ERROR]
    assert len(failed) == 1
    assert failed[0].attributes["rpc.grpc.status_code"] == 3
