"""A real two-hop call (client -> front -> leaf): trace id, request id and deadline travel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import grpc
import grpc.aio
import pytest
from meshcore.context import current_principal, current_request_id, time_remaining
from meshcore.interceptors import (
    AuthOptions,
    RateLimitOptions,
    build_client_interceptors,
    build_server_chain,
)
from meshcore.interceptors.logging import current_trace_id
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from tests.tokens import MINT

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _identity(value: bytes) -> bytes:
    return value


def _snapshot() -> dict[str, Any]:
    principal = current_principal()
    return {
        "trace_id": current_trace_id(),
        "request_id": current_request_id(),
        "remaining": time_remaining(),
        "caller": principal.subject if principal else None,
    }


async def _serve(stack: AsyncExitStack, name: str, behavior: Any, interceptors: list[Any]) -> str:
    server = grpc.aio.server(interceptors=interceptors)
    handler = grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=_identity, response_serializer=_identity
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(f"test.v1.{name}", {"Call": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stack.push_async_callback(server.stop, None)
    return f"127.0.0.1:{port}"


def _chain(provider: Any, registry: CollectorRegistry) -> list[grpc.aio.ServerInterceptor]:
    return build_server_chain(
        auth=AuthOptions(
            jwt_secret=None, key_source=MINT.keys, excluded_methods=["/test.v1.Front/Call"]
        ),
        rate_limit=RateLimitOptions(redis_url=None),
        metrics_registry=registry,
        tracer_provider=provider,
    )


@pytest.fixture
async def two_hops(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """front calls leaf through meshcore client interceptors; tracing on or off per param."""
    tracing = request.param
    exporter = InMemorySpanExporter()
    provider = None
    if tracing:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    async with AsyncExitStack() as stack:

        async def leaf(request: bytes, context: Any) -> bytes:
            return json.dumps(_snapshot()).encode()

        leaf_address = await _serve(stack, "Leaf", leaf, _chain(provider, registry))
        channel = grpc.aio.insecure_channel(
            leaf_address,
            interceptors=build_client_interceptors(
                service_token=MINT.service_token("front"),
                default_timeout=30.0,
                tracer_provider=provider,
                metrics_registry=registry,
            ),
        )
        stack.push_async_callback(channel.close)
        call_leaf = channel.unary_unary("/test.v1.Leaf/Call")

        async def front(request: bytes, context: Any) -> bytes:
            mine = _snapshot()
            if request == b"slow":
                await asyncio.sleep(0.3)  # spend part of the budget before the second hop
            theirs = json.loads(await call_leaf(b""))
            return json.dumps({"front": mine, "leaf": theirs}).encode()

        front_address = await _serve(stack, "Front", front, _chain(provider, registry))
        client = grpc.aio.insecure_channel(front_address)
        stack.push_async_callback(client.close)
        yield {
            "call": client.unary_unary("/test.v1.Front/Call"),
            "exporter": exporter,
            "registry": registry,
        }


@pytest.mark.parametrize("two_hops", [True], indirect=True)
async def test_one_trace_spans_both_hops(two_hops: dict[str, Any]) -> None:
    """The caller's trace id reaches the leaf, with server and client spans linked in order."""
    traceparent = f"00-{TRACE}-00f067aa0ba902b7-01"
    reply = json.loads(await two_hops["call"](b"", metadata=(("traceparent", traceparent),)))
    assert reply["front"]["trace_id"] == TRACE
    assert reply["leaf"]["trace_id"] == TRACE
    spans = {span.kind: span for span in two_hops["exporter"].get_finished_spans()}
    front_server = next(
        s
        for s in two_hops["exporter"].get_finished_spans()
        if s.kind == SpanKind.SERVER and s.name == "test.v1.Front/Call"
    )
    client_span = spans[SpanKind.CLIENT]
    leaf_server = next(
        s
        for s in two_hops["exporter"].get_finished_spans()
        if s.kind == SpanKind.SERVER and s.name == "test.v1.Leaf/Call"
    )
    assert client_span.parent.span_id == front_server.context.span_id
    assert leaf_server.parent.span_id == client_span.context.span_id
    assert {format(s.context.trace_id, "032x") for s in spans.values()} == {TRACE}


@pytest.mark.parametrize("two_hops", [False], indirect=True)
async def test_traceparent_is_forwarded_when_tracing_is_off(two_hops: dict[str, Any]) -> None:
    """With no tracer provider, the caller's traceparent still crosses both hops unchanged."""
    traceparent = f"00-{TRACE}-00f067aa0ba902b7-01"
    reply = json.loads(await two_hops["call"](b"", metadata=(("traceparent", traceparent),)))
    assert reply["leaf"]["trace_id"] == TRACE
    assert two_hops["exporter"].get_finished_spans() == ()


@pytest.mark.parametrize("two_hops", [False], indirect=True)
async def test_request_id_and_caller_identity_reach_the_second_hop(
    two_hops: dict[str, Any],
) -> None:
    """The leaf sees the client's x-request-id and authenticates front by its service token."""
    reply = json.loads(await two_hops["call"](b"", metadata=(("x-request-id", "req-7"),)))
    assert reply["front"]["request_id"] == reply["leaf"]["request_id"] == "req-7"
    assert reply["leaf"]["caller"] == "front"
    handled = two_hops["registry"].get_sample_value(
        "grpc_client_handled_total",
        {
            "grpc_service": "test.v1.Leaf",
            "grpc_method": "Call",
            "grpc_type": "unary",
            "grpc_code": "OK",
        },
    )
    assert handled == 1


@pytest.mark.parametrize("two_hops", [False], indirect=True)
async def test_the_deadline_shrinks_across_hops(two_hops: dict[str, Any]) -> None:
    """A 2 s budget of which front spends 0.3 s leaves the leaf about 1.7 s, not 30 s."""
    reply = json.loads(await two_hops["call"](b"slow", timeout=2.0))
    front, leaf = reply["front"]["remaining"], reply["leaf"]["remaining"]
    assert 1.9 < front < 2.1  # grpc rounds the wire timeout up by a few milliseconds
    assert 0 < leaf < front - 0.25
    unbounded = json.loads(await two_hops["call"](b""))
    assert unbounded["front"]["remaining"] is None
    assert 29.0 < unbounded["leaf"]["remaining"] < 30.2  # the 30 s client default, rounded up
