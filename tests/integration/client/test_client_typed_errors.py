"""Typed clients raise typed errors carrying the server's google.rpc details, over real channels.

The server is a generated Auth servicer behind meshcore's ErrorMappingInterceptor (the layer
every service uses), raising meshcore errors as domain code does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from meshcore.client_manager import create_grpc_client_manager
from meshcore.errors import FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from meshcore.interceptors import ErrorMappingInterceptor
from meshcore.status_details import ResourceRef
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.clients import AuthServiceClient
from zoptal.clients.errors import (
    ApiError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)

from .conftest import FAST_RECONNECT


class FailingAuth(auth_pb2_grpc.AuthServiceServicer):
    async def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        raise InvalidArgument.of(
            [FieldViolation("email", "is not an address"), FieldViolation("password", "empty")]
        )

    async def GetUser(
        self, request: auth_pb2.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetUserResponse:
        raise NotFound("user", request.user_id)

    async def RegisterUser(
        self, request: auth_pb2.RegisterUserRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RegisterUserResponse:
        raise ResourceExhausted("too many attempts", reason="LOGIN_THROTTLED", retry_after=7)

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetJwksResponse:
        # Not a meshcore error: another stack's bare status, with no details at all.
        await context.abort(grpc.StatusCode.UNAVAILABLE, "proxy says no")
        raise AssertionError("abort returned")


@pytest.fixture
async def auth() -> AsyncIterator[AuthServiceClient]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    auth_pb2_grpc.add_AuthServiceServicer_to_server(FailingAuth(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    manager = create_grpc_client_manager(
        {"auth": f"127.0.0.1:{port}"},
        interceptors=(),
        channel_options=FAST_RECONNECT,
        health_checks=False,
    )
    try:
        async with manager:
            yield AuthServiceClient(manager)
    finally:
        await server.stop(None)


async def test_every_field_violation_reaches_the_client(auth: AuthServiceClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await auth.login("x", "")
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # still an AioRpcError
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.field_violations == (
        FieldViolation("email", "is not an address"),
        FieldViolation("password", "empty"),
    )
    assert (error.reason, error.domain) == ("INVALID_ARGUMENT", "zoptal.auth.v1")


async def test_not_found_names_its_resource(auth: AuthServiceClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await auth.get_user("u-404")
    assert caught.value.resource == ResourceRef("user", "u-404")
    assert caught.value.retry_after is None


async def test_a_reason_and_retry_delay_tell_the_client_what_to_do(
    auth: AuthServiceClient,
) -> None:
    with pytest.raises(ResourceExhaustedError) as caught:
        await auth.register_user("a@example.com", "correct horse battery")
    assert caught.value.reason == "LOGIN_THROTTLED"
    assert caught.value.retry_after == 7


async def test_a_status_without_details_still_types_by_code(auth: AuthServiceClient) -> None:
    with pytest.raises(UnavailableError) as caught:
        await auth.get_jwks()
    error: ApiError = caught.value
    assert error.details() == "proxy says no"
    assert (error.reason, error.field_violations, error.retry_after) == ("", (), None)
