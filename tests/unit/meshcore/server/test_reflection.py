"""Server reflection v1 and v1alpha on a MeshServer, over a real channel."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from meshcore.server import ServiceRegistration
from meshcore.testing import serve_in_process

from tests.reflection_v1 import V1_METHOD, V1Request, V1Response

ECHO_SERVICE = "meshtest.Echo"


async def ask_v1(channel: grpc.aio.Channel, **request: Any) -> Any:
    call = channel.stream_stream(
        V1_METHOD,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=V1Response.FromString,
    )
    replies = [reply async for reply in call(iter([V1Request(**request)]), timeout=5)]
    (reply,) = replies
    return reply


def file_names(reply: Any) -> set[str]:
    names = set()
    for serialized in reply.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(serialized)
        names.add(proto.name)
    return names


async def test_a_v1_only_client_lists_every_service(echo_service: ServiceRegistration) -> None:
    """grpcurl's default protocol: the services, health and both reflection versions."""
    async with serve_in_process([echo_service]) as (_, channel):
        reply = await ask_v1(channel, list_services="")
    listed = {service.name for service in reply.list_services_response.service}
    assert listed == {
        ECHO_SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }


@pytest.mark.parametrize(
    "symbol",
    [
        "grpc.health.v1.Health",  # a service
        "grpc.health.v1.Health.Check",  # a method, by its full name
        "grpc.health.v1.HealthCheckRequest",  # a message
        "grpc.health.v1.HealthCheckResponse.ServingStatus",  # an enum
    ],
)
async def test_v1_finds_the_file_of_each_kind_of_symbol(
    echo_service: ServiceRegistration, symbol: str
) -> None:
    async with serve_in_process([echo_service]) as (_, channel):
        reply = await ask_v1(channel, file_containing_symbol=symbol)
    assert reply.WhichOneof("message_response") == "file_descriptor_response", reply
    assert "grpc_health/v1/health.proto" in file_names(reply)


@pytest.mark.parametrize(
    "symbol", ["grpc.health.v1.Health.NoSuchMethod", "no.such.Service", "no.such.Service.Method"]
)
async def test_an_unknown_symbol_is_not_found(
    echo_service: ServiceRegistration, symbol: str
) -> None:
    async with serve_in_process([echo_service]) as (_, channel):
        reply = await ask_v1(channel, file_containing_symbol=symbol)
    assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_v1alpha_still_answers_with_method_lookup(echo_service: ServiceRegistration) -> None:
    """Older tools keep working on the same server, with the same answers."""
    async with serve_in_process([echo_service]) as (_, channel):
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.health.v1.Health.Watch"
        )
        replies = [reply async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5)]
    assert "grpc_health/v1/health.proto" in file_names(replies[0])
