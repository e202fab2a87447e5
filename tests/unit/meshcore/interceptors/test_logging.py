"""LoggingInterceptor and redaction: structured records, levels, secrets masked at any depth."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import grpc.aio
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from meshcore.interceptors import ErrorMappingInterceptor, LoggingInterceptor
from meshcore.observability import JsonFormatter
from meshcore.redaction import REDACTED, Redactor

from tests.unit.meshcore.interceptors.interceptor_testkit import UNARY, EchoFactory, settle

LOGGER = "test.access"


def test_sensitive_fields_are_redacted_at_any_depth() -> None:
    """password/token keys nested in structs and lists are masked; other values stay."""
    message = struct_pb2.Struct()
    message.update(
        {
            "email": "a@example.com",
            "profile": {"settings": {"api_token": "t0k3n", "theme": "dark"}},
            "accounts": [{"name": "main", "newPassword": "hunter2"}],
        }
    )
    shown = Redactor().message(message)
    assert shown["email"] == "a@example.com"
    assert shown["profile"]["settings"] == {"api_token": REDACTED, "theme": "dark"}
    assert shown["accounts"] == [{"name": "main", "newPassword": REDACTED}]
    assert "hunter2" not in json.dumps(shown)


def test_fields_inside_repeated_nested_messages_are_redacted() -> None:
    """Typed messages: a configured field inside a repeated sub-message is masked."""
    request = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field="f", description="x")]
    )
    shown = Redactor(["description"]).message(request)
    assert shown == {"field_violations": [{"field": "f", "description": REDACTED}]}


def test_sensitive_metadata_is_redacted() -> None:
    """authorization and x-service-token values never appear; binary values show a length."""
    shown = Redactor().metadata(
        [
            ("authorization", "Bearer abc"),
            ("x-service-token", "s"),
            ("x-request-id", "r1"),
            ("trace-bin", b"\x00\x01"),
        ]
    )
    assert shown == {
        "authorization": REDACTED,
        "x-service-token": REDACTED,
        "x-request-id": "r1",
        "trace-bin": "<2 bytes>",
    }


def _interceptor(**options: object) -> LoggingInterceptor:
    return LoggingInterceptor(logger=logging.getLogger(LOGGER), **options)  # type: ignore[arg-type]


async def test_ok_calls_are_not_logged_at_info_by_default(
    echo: EchoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A healthy call at the default INFO level produces no record (and no formatting)."""
    client = await echo([_interceptor()])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await client.unary(b"a")
    assert [r for r in caplog.records if r.name == LOGGER] == []


async def test_access_records_carry_method_code_duration_peer_and_request_id(
    echo: EchoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """log_requests=True logs each call at INFO with its fields and the redacted metadata."""
    client = await echo([_interceptor(log_requests=True)])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await client.unary(b"a", metadata=(("authorization", "Bearer secret-token"),))
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.grpc_method == UNARY  # type: ignore[attr-defined]
    assert record.grpc_code == "OK"  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
    assert record.peer.startswith("ipv")  # type: ignore[attr-defined]
    assert record.metadata["authorization"] == REDACTED  # type: ignore[attr-defined]
    line = JsonFormatter("test").format(record)
    assert "secret-token" not in line
    assert json.loads(line)["grpc_code"] == "OK"


async def test_client_errors_log_at_info_and_server_errors_at_error(
    echo: EchoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """INVALID_ARGUMENT is the client's doing (INFO); INTERNAL is ours (ERROR), stream or not."""
    client = await echo([_interceptor(), ErrorMappingInterceptor()])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        with pytest.raises(grpc.aio.AioRpcError):
            await client.unary(b"invalid")
        with pytest.raises(grpc.aio.AioRpcError):
            [r async for r in client.server_stream(b"boom")]
    await settle()
    records = [(r.levelname, r.grpc_code) for r in caplog.records if r.name == LOGGER]  # type: ignore[attr-defined]
    assert records == [("INFO", "INVALID_ARGUMENT"), ("ERROR", "INTERNAL")]
    streamed = [r for r in caplog.records if r.name == LOGGER][1]
    assert streamed.messages_sent == 2  # type: ignore[attr-defined]


async def test_every_rpc_shape_gets_one_record_with_its_type(
    echo: EchoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Unary, server-, client- and bidi-streaming calls each log one finished record."""

    async def one(item: bytes) -> AsyncIterator[bytes]:
        yield item

    client = await echo([_interceptor(log_requests=True)])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await client.unary(b"u")
        [r async for r in client.server_stream(b"s")]
        await client.client_stream(one(b"c"))
        [r async for r in client.bidi(one(b"b"))]
        await settle()
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [(r.grpc_type, r.grpc_code) for r in records] == [  # type: ignore[attr-defined]
        ("unary", "OK"),
        ("server_stream", "OK"),
        ("client_stream", "OK"),
        ("bidi_stream", "OK"),
    ]
    assert records[0].request == {"bytes": 1}  # type: ignore[attr-defined]
