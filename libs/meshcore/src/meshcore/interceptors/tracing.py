"""OpenTelemetry spans for server calls (``TracingInterceptor``) and client calls
(``TracingClientInterceptor``), with W3C ``traceparent`` carried in gRPC metadata.

Off (no tracer provider, see ``meshcore.observability.configure_tracing``) both cost nothing:
the server interceptor does not wrap any method, and the client one is not installed (the
propagation interceptor still forwards the caller's ``traceparent`` unchanged).

On, each span starts with its attributes (``rpc.system``, ``rpc.service``, ``rpc.method``) so
the sampler sees them; a span that is not sampled gets no further attribute work. Status per the
OpenTelemetry RPC conventions: server spans are errors only for server-side codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
import grpc.aio
from opentelemetry import context as otel_context, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from meshcore.interceptors.base import RpcMethod, call_metadata
from meshcore.interceptors.hooks import CallRecord, ObservingInterceptor

__all__ = ["PROPAGATOR", "TracingInterceptor", "end_span"]

PROPAGATOR = TraceContextTextMapPropagator()
_SERVER_ERROR_CODES = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}


class _MetadataGetter(Getter[Iterable[tuple[str, Any]]]):
    def get(self, carrier: Iterable[tuple[str, Any]], key: str) -> list[str] | None:
        values = [value for name, value in carrier if name == key and isinstance(value, str)]
        return values or None

    def keys(self, carrier: Iterable[tuple[str, Any]]) -> list[str]:
        return [name for name, _ in carrier]


_GETTER = _MetadataGetter()


def end_span(span: trace.Span, code: str, *, server: bool) -> None:
    """Record the final status code on ``span`` and end it."""
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", _CODE_NUMBERS.get(code, 2))
        if code != "OK" and (not server or code in _SERVER_ERROR_CODES):
            span.set_status(Status(StatusCode.ERROR, code))
    span.end()


def span_attributes(rpc_service: str, rpc_method: str) -> Mapping[str, str]:
    return {"rpc.system": "grpc", "rpc.service": rpc_service, "rpc.method": rpc_method}


class TracingInterceptor(ObservingInterceptor):
    """A SERVER span per call, child of the caller's ``traceparent`` when there is one."""

    def __init__(self, tracer_provider: Any | None = None) -> None:
        super().__init__()
        self._tracer: trace.Tracer | None = (
            tracer_provider.get_tracer("meshcore.interceptors")
            if tracer_provider is not None
            else None
        )
        self._attributes: dict[str, Mapping[str, str]] = {}

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def applies_to(self, rpc: RpcMethod) -> bool:
        if self._tracer is None:
            return False
        self._attributes[rpc.full_name] = span_attributes(rpc.service, rpc.name)
        return True

    def start(
        self, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod, record: CallRecord
    ) -> trace.Span:
        assert self._tracer is not None  # applies_to keeps disabled tracing out of the chain
        parent = PROPAGATOR.extract(call_metadata(context), getter=_GETTER)
        span = self._tracer.start_span(
            rpc.full_name[1:],
            context=parent,
            kind=SpanKind.SERVER,
            attributes=self._attributes[rpc.full_name],
        )
        # Each RPC runs in its own task: the attached context dies with it, no detach needed.
        otel_context.attach(trace.set_span_in_context(span, parent))
        return span

    def finish(
        self, state: trace.Span, record: CallRecord, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        end_span(state, record.code, server=True)
