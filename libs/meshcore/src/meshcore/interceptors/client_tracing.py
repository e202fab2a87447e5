"""``TracingClientInterceptor``: a CLIENT span per outgoing call, its ``traceparent`` sent along."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc.aio
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from meshcore.interceptors.base import RpcMethod
from meshcore.interceptors.client import ClientInterceptor, when_finished
from meshcore.interceptors.tracing import PROPAGATOR, end_span, span_attributes

__all__ = ["TracingClientInterceptor"]


class TracingClientInterceptor(ClientInterceptor):
    def __init__(self, tracer_provider: Any) -> None:
        self._tracer = tracer_provider.get_tracer("meshcore.interceptors")

    async def intercept(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        details: grpc.aio.ClientCallDetails,
        request_or_iterator: Any,
        rpc: RpcMethod,
    ) -> Any:
        span = self._tracer.start_span(
            rpc.full_name.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes=span_attributes(rpc.service, rpc.name),
        )
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        for key, value in carrier.items():
            metadata[key] = value
        new_details = details._replace(metadata=metadata)  # type: ignore[attr-defined]
        try:
            call = await continuation(new_details, request_or_iterator)
        except grpc.aio.AioRpcError as error:
            end_span(span, error.code().name, server=False)
            raise
        when_finished(call, lambda code: end_span(span, code, server=False))
        return call
