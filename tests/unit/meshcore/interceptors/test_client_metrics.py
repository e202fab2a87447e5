"""meshcore.interceptors.client_metrics: client series for every call shape."""

from __future__ import annotations

import grpc.aio
import pytest
from meshcore.interceptors import ErrorMappingInterceptor, build_client_interceptors
from prometheus_client import CollectorRegistry

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    SERVICE,
    EchoFactory,
    recorded,
    settle,
    stream_of,
)


async def test_client_series_count_every_shape(echo: EchoFactory) -> None:
    """started, handled{grpc_code}, sent and the histogram are kept per method and shape."""
    registry = CollectorRegistry()
    client = await echo(
        [ErrorMappingInterceptor()], build_client_interceptors(metrics_registry=registry)
    )
    await client.unary(b"a")
    [r async for r in client.server_stream(b"s")]
    await client.client_stream(stream_of(b"1", b"2"))
    [r async for r in client.bidi(stream_of(b"x"))]
    with pytest.raises(grpc.aio.AioRpcError):
        await client.unary(b"invalid")
    await settle()

    def value(name: str, method: str, kind: str, **extra: str) -> float:
        labels = {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": kind, **extra}
        return registry.get_sample_value(name, labels) or 0.0

    await recorded(lambda: value("grpc_client_handling_seconds_count", "Unary", "unary") == 2)
    await recorded(lambda: value("grpc_client_handling_seconds_count", "Bidi", "bidi_stream") == 1)
    assert value("grpc_client_started_total", "Unary", "unary") == 2
    assert value("grpc_client_handled_total", "Unary", "unary", grpc_code="OK") == 1
    invalid = {"grpc_code": "INVALID_ARGUMENT"}
    assert value("grpc_client_handled_total", "Unary", "unary", **invalid) == 1
    assert value("grpc_client_msg_received_total", "Unary", "unary") == 1
    ok = {"grpc_code": "OK"}
    assert value("grpc_client_handled_total", "ServerStream", "server_stream", **ok) == 1
    assert value("grpc_client_msg_sent_total", "ClientStream", "client_stream") == 2
    assert value("grpc_client_handled_total", "Bidi", "bidi_stream", **ok) == 1
