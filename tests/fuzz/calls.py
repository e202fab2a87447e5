"""Calling any RPC generically, and judging the answer the way DESIGN.md section 5 demands."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from tests.fuzz.catalogue import Rpc

__all__ = [
    "CLIENT_MISTAKE_CODES",
    "Outcome",
    "acceptable_for_client_input",
    "bearer",
    "call",
    "call_raw",
    "describe",
    "leaks_internals",
    "service_header",
]

Metadata = Sequence[tuple[str, str]]
CALL_TIMEOUT_SECONDS = 20.0
# What a server may answer to anything a client sends. INTERNAL and UNKNOWN mean the server broke;
# DEADLINE_EXCEEDED here means it hung past a generous client deadline.
CLIENT_MISTAKE_CODES = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# Signs of a Python stack trace or internal detail in text sent to the client: a trace, a
# driver's name, a Python exception or type name (OverflowError, ValueError, int(...)).
_LEAK = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|"
    r"<class '|sqlalchemy|asyncpg|aiosqlite|sqlite3\.|psycopg|\.py\", line|"
    r"\w*(?:Error|Exception)\b|\b(?:int|float|str|Decimal)\(|<class |<built-in"
)


@dataclass(frozen=True)
class Outcome:
    """The status a call ended with, its details and trailing metadata (values as text)."""

    code: grpc.StatusCode
    details: str
    trailers: tuple[tuple[str, str], ...]
    response: Any = None


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def service_header(token: str) -> Metadata:
    return (("x-service-token", token),)


def _trailers(items: Iterable[Any] | None) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for key, value in items or ():
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        pairs.append((str(key), text))
    return tuple(pairs)


def _invoke(callable_: Any, request: Any, metadata: Metadata) -> Outcome:
    try:
        response, call_ = callable_.with_call(
            request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
        )
    except grpc.RpcError as raised:
        error: Any = raised  # a grpc.Call as well, which the stubs do not say
        return Outcome(error.code(), error.details() or "", _trailers(error.trailing_metadata()))
    return Outcome(grpc.StatusCode.OK, "", _trailers(call_.trailing_metadata()), response)


def call(channel: grpc.Channel, rpc: Rpc, request: Any, metadata: Metadata = ()) -> Outcome:
    """Call ``rpc`` with one message (or, for client streaming, a list of messages)."""
    if rpc.server_streaming:
        raise NotImplementedError(f"{rpc} streams responses; no service does that yet")
    serializer = rpc.request_class.SerializeToString
    if rpc.client_streaming:
        streaming = channel.stream_unary(
            rpc.full_name,
            request_serializer=serializer,
            response_deserializer=rpc.response_class.FromString,
        )
        messages = request if isinstance(request, list) else [request]
        return _invoke(streaming, iter(messages), metadata)
    stub = channel.unary_unary(
        rpc.full_name,
        request_serializer=serializer,
        response_deserializer=rpc.response_class.FromString,
    )
    return _invoke(stub, request, metadata)


def call_raw(channel: grpc.Channel, rpc: Rpc, frame: bytes, metadata: Metadata = ()) -> Outcome:
    """Send ``frame`` as the request body exactly as given (no serialisation at all)."""
    if rpc.client_streaming:
        streaming: Any = channel.stream_unary(rpc.full_name)
        return _invoke(streaming, iter([frame]), metadata)
    return _invoke(channel.unary_unary(rpc.full_name), frame, metadata)


def acceptable_for_client_input(outcome: Outcome) -> bool:
    """A status a server may give to anything a client sends.

    UNAVAILABLE counts only with the ``retry-after`` trailer meshcore adds when it deliberately
    reports a slow or down dependency (e.g. Project's 3 s Billing deadline on a loaded machine);
    grpc's own transport failures carry no such trailer.
    """
    if outcome.code in CLIENT_MISTAKE_CODES:
        return True
    return outcome.code == grpc.StatusCode.UNAVAILABLE and any(
        key == "retry-after" for key, _ in outcome.trailers
    )


def leaks_internals(outcome: Outcome) -> str | None:
    """The leaked text when details or trailers show a stack trace or internals, else None."""
    texts = [outcome.details, *(value for key, value in outcome.trailers if key != "retry-after")]
    for text in texts:
        match = _LEAK.search(text)
        if match:
            return text[max(0, match.start() - 80) : match.end() + 160]
    return None


def describe(rpc: Rpc, request: Any, outcome: Outcome) -> str:
    shown = repr(request)
    if len(shown) > 600:
        shown = shown[:600] + f"... ({len(shown)} chars)"
    return f"{rpc}: {outcome.code.name} {outcome.details[:400]!r}\nrequest: {shown}"
