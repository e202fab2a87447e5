"""``LoggingInterceptor``: one structured record per finished call, secrets redacted.

Each record carries ``grpc_method``, ``grpc_code``, ``duration_ms``, ``peer``, ``request_id`` and
``trace_id`` as fields (``meshcore.observability.JsonFormatter`` renders them as JSON).

Levels, chosen so that a healthy server at the default ``INFO`` does no per-call formatting:

* OK calls: ``DEBUG``, or ``INFO`` with ``log_requests=True`` (the seed's access log);
* calls the client got wrong (INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED, ...): ``INFO``;
* server-side failures (INTERNAL, UNKNOWN, UNAVAILABLE, DEADLINE_EXCEEDED, DATA_LOSS, ...):
  ``ERROR`` when ``log_errors`` (the default).

``log_requests``/``log_responses`` add the (redacted) request and response messages and the
redacted metadata. The level check comes first and is a cached lookup; nothing is formatted,
redacted or serialised for a record below the level.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import grpc.aio
from opentelemetry import trace

from meshcore.context import current_request_id, inbound_traceparent
from meshcore.interceptors.base import call_metadata
from meshcore.interceptors.hooks import CallRecord, ObservingInterceptor
from meshcore.redaction import DEFAULT_SENSITIVE_FIELDS, Redactor

__all__ = ["CLIENT_ERROR_CODES", "LoggingInterceptor", "current_trace_id"]

CLIENT_ERROR_CODES = frozenset(
    {
        "CANCELLED",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAUTHENTICATED",
    }
)


def current_trace_id() -> str | None:
    """The trace id of the current span, else of the caller's ``traceparent``."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        return format(span_context.trace_id, "032x")
    traceparent = inbound_traceparent()
    if traceparent and len(traceparent) >= 35:
        return traceparent[3:35]
    return None


class LoggingInterceptor(ObservingInterceptor):
    """Logs finished calls to ``logger`` (default ``meshcore.access``)."""

    def __init__(
        self,
        log_level: str | int = "INFO",
        log_requests: bool = False,
        log_responses: bool = False,
        log_errors: bool = True,
        sensitive_fields: Iterable[str] = DEFAULT_SENSITIVE_FIELDS,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__()
        self.logger = logger or logging.getLogger("meshcore.access")
        self.logger.setLevel(log_level.upper() if isinstance(log_level, str) else log_level)
        self._ok_level = logging.INFO if log_requests else logging.DEBUG
        self._log_requests = log_requests
        self._log_responses = log_responses
        self._log_errors = log_errors
        self.redactor = Redactor(sensitive_fields)

    def _level_for(self, code: str) -> int | None:
        if code == "OK":
            return self._ok_level
        if code in CLIENT_ERROR_CODES:
            return logging.INFO
        return logging.ERROR if self._log_errors else None

    def finish(
        self, state: Any, record: CallRecord, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        code = record.code
        # OK first, inline: the level every healthy call is checked against.
        level = self._ok_level if code == "OK" else self._level_for(code)
        if level is None or not self.logger.isEnabledFor(level):
            return
        rpc = record.rpc
        fields: dict[str, Any] = {
            "grpc_method": rpc.full_name,
            "grpc_type": rpc.rpc_type,
            "grpc_code": code,
            "duration_ms": round(record.duration * 1000, 3),
            "peer": record.peer,
            "request_id": current_request_id(),
            "trace_id": current_trace_id(),
        }
        if rpc.response_streaming:
            fields["messages_sent"] = record.messages_sent
        if rpc.request_streaming:
            fields["messages_received"] = record.messages_received
        if code != "OK":
            # A streaming call that has ended must not be asked anything (see CallRecord.peer).
            live = record.error is not None and not rpc.response_streaming
            details = context.details() if live else None
            fields["grpc_message"] = details or (
                str(record.error) if record.error is not None else None
            )
        if self._log_requests:
            fields["metadata"] = self.redactor.metadata(call_metadata(context))
            if not rpc.request_streaming:
                fields["request"] = self.redactor.message(record.request)
        if self._log_responses and record.response is not None:
            fields["response"] = self.redactor.message(record.response)
        self.logger.log(level, "%s %s", rpc.full_name, code, extra=fields)
