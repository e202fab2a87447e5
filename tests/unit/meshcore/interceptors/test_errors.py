"""ErrorMappingInterceptor: typed errors become their status, anything else an opaque INTERNAL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from meshcore.errors import FieldViolation
from meshcore.interceptors import ErrorMappingInterceptor
from meshcore.status_details import ResourceRef, StatusDetails

from tests.unit.meshcore.interceptors.interceptor_testkit import EchoFactory


async def _one(item: bytes) -> AsyncIterator[bytes]:
    yield item


async def _status_of_every_shape(client, payload: bytes) -> list[grpc.aio.AioRpcError]:  # type: ignore[no-untyped-def]
    errors = []
    for call in (
        lambda: client.unary(payload),
        lambda: client.client_stream(_one(payload)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call()
        errors.append(raised.value)
    for stream in (lambda: client.server_stream(payload), lambda: client.bidi(_one(payload))):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            [reply async for reply in stream()]
        errors.append(raised.value)
    return errors


async def test_typed_errors_map_to_their_status_in_every_shape(echo: EchoFactory) -> None:
    """InvalidArgument becomes INVALID_ARGUMENT naming the field, unary and streaming alike."""
    client = await echo([ErrorMappingInterceptor()])
    for error in await _status_of_every_shape(client, b"invalid"):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == "payload: must not be 'invalid'"
        details = StatusDetails.of(error)
        assert (details.reason, details.domain) == ("INVALID_ARGUMENT", "test.v1")
        assert details.field_violations == (FieldViolation("payload", "must not be 'invalid'"),)


async def test_every_invalid_field_is_a_bad_request_violation(echo: EchoFactory) -> None:
    """InvalidArgument.of names each field in the message and in google.rpc.BadRequest."""
    client = await echo([ErrorMappingInterceptor()])
    for error in await _status_of_every_shape(client, b"invalid-twice"):
        assert error.details() == "name: must not be empty; size: too large"
        assert StatusDetails.of(error).field_violations == (
            FieldViolation("name", "must not be empty"),
            FieldViolation("size", "too large"),
        )


async def test_not_found_names_the_resource(echo: EchoFactory) -> None:
    client = await echo([ErrorMappingInterceptor()])
    for error in await _status_of_every_shape(client, b"missing"):
        assert error.code() == grpc.StatusCode.NOT_FOUND
        details = StatusDetails.of(error)
        assert details.resource == ResourceRef("project", "p-1")
        assert details.reason == "NOT_FOUND"
        assert details.retry_after is None


async def test_a_raised_reason_and_metadata_reach_the_client(echo: EchoFactory) -> None:
    """A domain reason (a plan limit) is told apart from a rate limit without reading text."""
    client = await echo([ErrorMappingInterceptor()])
    for error in await _status_of_every_shape(client, b"quota"):
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = StatusDetails.of(error)
        assert details.reason == "PLAN_LIMIT_REACHED"
        assert details.metadata == {"metric": "projects"}
        assert details.retry_after is None
        assert "retry-after" not in dict(error.trailing_metadata() or ())


async def test_unexpected_errors_become_internal_with_a_logged_correlation_id(
    echo: EchoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A RuntimeError reaches the client as INTERNAL with an id, its text only in the log."""
    client = await echo([ErrorMappingInterceptor()])
    with caplog.at_level(logging.ERROR, logger="meshcore.interceptors.errors"):
        errors = await _status_of_every_shape(client, b"boom")
    logged_ids = {record.correlation_id for record in caplog.records}  # type: ignore[attr-defined]
    for error in errors:
        assert error.code() == grpc.StatusCode.INTERNAL
        assert "hunter2" not in (error.details() or "")
        assert "Traceback" not in (error.details() or "")
        correlation_id = error.details().split("correlation id ")[1].rstrip(")")
        assert correlation_id in logged_ids
        details = StatusDetails.of(error)
        assert details.reason == "INTERNAL"
        assert details.metadata == {"correlation_id": correlation_id}
    assert all(record.exc_info for record in caplog.records)


async def test_resource_exhausted_carries_retry_info_and_retry_after(echo: EchoFactory) -> None:
    """retry_after travels as google.rpc.RetryInfo and as a whole-second retry-after trailer."""
    client = await echo([ErrorMappingInterceptor()])
    call = client.unary(b"limit")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(raised.value.trailing_metadata() or ())
    assert trailers["retry-after"] == "3"
    assert StatusDetails.of(raised.value).retry_after == 2.5


async def test_a_handler_abort_keeps_its_own_status(echo: EchoFactory) -> None:
    """context.abort inside a handler is not rewritten to INTERNAL."""
    client = await echo([ErrorMappingInterceptor()])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.unary(b"abort")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == "handler aborted"
