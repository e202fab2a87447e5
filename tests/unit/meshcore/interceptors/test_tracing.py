"""TracingInterceptor: server spans for every shape, parented by traceparent; free when off."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
import pytest
from meshcore.interceptors import ErrorMappingInterceptor, RpcMethod, TracingInterceptor
from meshcore.observability import configure_tracing, tracing_enabled_by_env
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.unit.meshcore.interceptors.interceptor_testkit import SERVICE, EchoFactory, settle

PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{PARENT_TRACE}-b7ad6b7169203331-01"


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def _one(item: bytes) -> AsyncIterator[bytes]:
    yield item


async def test_every_shape_gets_a_server_span_in_the_callers_trace(echo: EchoFactory) -> None:
    """Each call makes one SERVER span, child of the caller's traceparent, with rpc attributes."""
    provider, exporter = _provider()
    client = await echo([TracingInterceptor(provider)])
    metadata = (("traceparent", TRACEPARENT),)
    await client.unary(b"u", metadata=metadata)
    [r async for r in client.server_stream(b"s", metadata=metadata)]
    await client.client_stream(_one(b"c"), metadata=metadata)
    [r async for r in client.bidi(_one(b"b"), metadata=metadata)]
    await settle()
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == [
        f"{SERVICE}/Unary",
        f"{SERVICE}/ServerStream",
        f"{SERVICE}/ClientStream",
        f"{SERVICE}/Bidi",
    ]
    for span in spans:
        assert span.kind == SpanKind.SERVER
        assert format(span.context.trace_id, "032x") == PARENT_TRACE
        assert span.parent is not None
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.grpc.status_code"] == 0


async def test_server_faults_mark_the_span_as_an_error(echo: EchoFactory) -> None:
    """INTERNAL (raised mid-stream) sets ERROR status; INVALID_ARGUMENT does not."""
    provider, exporter = _provider()
    client = await echo([TracingInterceptor(provider), ErrorMappingInterceptor()])
    with pytest.raises(grpc.aio.AioRpcError):
        [r async for r in client.server_stream(b"boom")]
    with pytest.raises(grpc.aio.AioRpcError):
        await client.unary(b"invalid")
    await settle()
    boom, invalid = exporter.get_finished_spans()
    assert boom.status.status_code == StatusCode.ERROR
    assert boom.attributes["rpc.grpc.status_code"] == 13
    assert invalid.status.status_code == StatusCode.UNSET
    assert invalid.attributes["rpc.grpc.status_code"] == 3


def test_tracing_off_wraps_nothing() -> None:
    """Without a provider the interceptor applies to no method, so it costs nothing."""
    rpc = RpcMethod("/a.B/C", "a.B", "C", False, False)
    assert not TracingInterceptor(None).applies_to(rpc)


def test_otel_environment_decides_whether_tracing_is_on() -> None:
    """Unset OTEL_* means off; an OTLP endpoint means on; OTEL_SDK_DISABLED wins."""
    assert not tracing_enabled_by_env({})
    assert configure_tracing("svc", {}) is None
    assert tracing_enabled_by_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"})
    assert not tracing_enabled_by_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_SDK_DISABLED": "true"}
    )
    assert not tracing_enabled_by_env({"OTEL_TRACES_EXPORTER": "none"})


def test_the_default_sampler_honours_callers_and_samples_new_traces_at_ten_percent() -> None:
    """Unless OTEL_TRACES_SAMPLER says otherwise: parent-based, 10 % of new traces."""
    provider = configure_tracing("svc", {}, exporter=InMemorySpanExporter(), batch=False)
    assert provider is not None
    description = provider.sampler.get_description()
    assert description.startswith("ParentBased{root:TraceIdRatioBased{0.1}")


async def test_a_sampled_caller_is_traced_even_at_the_default_ratio(echo: EchoFactory) -> None:
    """A traceparent with the sampled flag is always recorded (parent-based sampling)."""
    exporter = InMemorySpanExporter()
    provider = configure_tracing("svc", {}, exporter=exporter, batch=False)
    client = await echo([TracingInterceptor(provider)])
    for _ in range(5):
        await client.unary(b"u", metadata=(("traceparent", TRACEPARENT),))
    await settle()
    assert len(exporter.get_finished_spans()) == 5
