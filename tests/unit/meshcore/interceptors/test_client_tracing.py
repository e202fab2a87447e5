"""meshcore.interceptors.client_tracing: client spans for every call shape."""

from __future__ import annotations

import grpc.aio
import pytest
from meshcore.interceptors import ErrorMappingInterceptor, build_client_interceptors
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    SERVICE,
    EchoFactory,
    recorded,
    stream_of,
)


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
    await client.client_stream(stream_of(b"1"))
    [r async for r in client.bidi(stream_of(b"x"))]
    with pytest.raises(grpc.aio.AioRpcError):
        await client.unary(b"invalid")
    await recorded(lambda: len(exporter.get_finished_spans()) == 5)
    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == sorted(
        [f"{SERVICE}/Unary"] * 2
        + [f"{SERVICE}/ServerStream", f"{SERVICE}/ClientStream", f"{SERVICE}/Bidi"]
    )
    assert all(span.kind == SpanKind.CLIENT for span in spans)
    failed = [span for span in spans if span.status.status_code == StatusCode.ERROR]
    assert len(failed) == 1
    assert failed[0].attributes["rpc.grpc.status_code"] == 3
