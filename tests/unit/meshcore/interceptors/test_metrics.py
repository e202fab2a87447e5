"""MetricsInterceptor: exact series values after a known sequence of calls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
import pytest
from meshcore.interceptors import ErrorMappingInterceptor, MetricsInterceptor
from prometheus_client import CollectorRegistry

from tests.unit.meshcore.interceptors.interceptor_testkit import SERVICE, EchoFactory, settle


async def _items(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def _value(registry: CollectorRegistry, name: str, method: str, kind: str, **extra: str) -> float:
    labels = {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": kind, **extra}
    return registry.get_sample_value(name, labels) or 0.0


async def test_series_count_a_known_sequence_of_calls(echo: EchoFactory) -> None:
    """Started, handled by code, messages and histogram counts match the calls made."""
    registry = CollectorRegistry()
    metrics = MetricsInterceptor(registry=registry)
    client = await echo([metrics, ErrorMappingInterceptor()])
    await client.unary(b"a")
    await client.unary(b"b")
    with pytest.raises(grpc.aio.AioRpcError):
        await client.unary(b"invalid")
    assert len([r async for r in client.server_stream(b"s")]) == 2
    assert await client.client_stream(_items(b"1", b"2", b"3")) == b"1,2,3"
    with pytest.raises(grpc.aio.AioRpcError):
        [r async for r in client.bidi(_items(b"x", b"boom"))]

    await settle()
    assert _value(registry, "grpc_server_started_total", "Unary", "unary") == 3
    assert _value(registry, "grpc_server_handled_total", "Unary", "unary", grpc_code="OK") == 2
    invalid = {"grpc_code": "INVALID_ARGUMENT"}
    assert _value(registry, "grpc_server_handled_total", "Unary", "unary", **invalid) == 1
    assert _value(registry, "grpc_server_handling_seconds_count", "Unary", "unary") == 3
    assert _value(registry, "grpc_server_msg_received_total", "Unary", "unary") == 3
    assert _value(registry, "grpc_server_msg_sent_total", "Unary", "unary") == 2
    assert _value(registry, "grpc_server_msg_sent_total", "ServerStream", "server_stream") == 2
    ok = {"grpc_code": "OK"}
    assert _value(registry, "grpc_server_handled_total", "ServerStream", "server_stream", **ok) == 1
    assert _value(registry, "grpc_server_msg_received_total", "ClientStream", "client_stream") == 3
    assert _value(registry, "grpc_server_msg_received_total", "Bidi", "bidi_stream") == 2
    assert _value(registry, "grpc_server_msg_sent_total", "Bidi", "bidi_stream") == 1
    internal = {"grpc_code": "INTERNAL"}
    assert _value(registry, "grpc_server_handled_total", "Bidi", "bidi_stream", **internal) == 1


async def test_get_metrics_summarises_requests_and_errors(echo: EchoFactory) -> None:
    """get_metrics() reports totals and per-method counts, as the seed's getMetrics() does."""
    metrics = MetricsInterceptor(registry=CollectorRegistry())
    client = await echo([metrics, ErrorMappingInterceptor()])
    await client.unary(b"a")
    with pytest.raises(grpc.aio.AioRpcError):
        await client.unary(b"invalid")
    await settle()
    summary = metrics.get_metrics()
    assert summary["requests_total"] == 2
    assert summary["errors_total"] == 1
    unary = summary["methods"][f"/{SERVICE}/Unary"]
    assert unary["handled"] == {"OK": 1, "INVALID_ARGUMENT": 1}
    assert unary["average_ms"] > 0


async def test_interceptors_sharing_a_registry_share_the_series(echo: EchoFactory) -> None:
    """Two interceptors on one registry do not clash (one family per registry)."""
    registry = CollectorRegistry()
    first, second = MetricsInterceptor(registry=registry), MetricsInterceptor(registry=registry)
    await (await echo([first])).unary(b"a")
    await (await echo([second])).unary(b"b")
    assert _value(registry, "grpc_server_started_total", "Unary", "unary") == 2


async def test_exposition_uses_the_dashboard_names(echo: EchoFactory) -> None:
    """/metrics text has the go-grpc-prometheus families, cumulative buckets and +Inf."""
    from prometheus_client import generate_latest

    registry = CollectorRegistry()
    client = await echo([MetricsInterceptor(registry=registry)])
    await client.unary(b"a")
    await settle()
    text = generate_latest(registry).decode()
    labels = f'grpc_method="Unary",grpc_service="{SERVICE}",grpc_type="unary"'
    assert f"grpc_server_started_total{{{labels}}} 1.0" in text
    assert f'grpc_server_handled_total{{grpc_code="OK",{labels}}} 1.0' in text
    assert f'grpc_server_handling_seconds_bucket{{{labels},le="+Inf"}} 1.0' in text
    assert f"grpc_server_handling_seconds_count{{{labels}}} 1.0" in text
    assert "# TYPE grpc_server_handling_seconds histogram" in text
