"""The README's run command brings every installed service to SERVING with reflection on."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zoptal_platform.catalogue import installed_services

from tests.e2e.platform import EmbeddedPlatform
from tests.reflection_v1 import V1_METHOD, V1Request, V1Response


def _ask_v1(address: str, **request: Any) -> Any:
    """One reflection v1 request, as grpcurl sends it (no v1alpha fallback)."""
    with grpc.insecure_channel(address) as channel:
        call: grpc.StreamStreamMultiCallable[Any, Any] = channel.stream_stream(
            V1_METHOD,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=V1Response.FromString,
        )
        (reply,) = list(call(iter([V1Request(**request)]), timeout=5))
    return reply


def _methods(reply: Any, service_name: str) -> list[str]:
    package, _, name = service_name.rpartition(".")
    for serialized in reply.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        for service in proto.service:
            if proto.package == package and service.name == name:
                return [method.name for method in service.method]
    raise AssertionError(f"{service_name} is not in the files reflection returned")


def test_every_installed_service_is_serving(embedded_platform: EmbeddedPlatform) -> None:
    """Each service answers grpc.health.v1 Check with SERVING for itself and for the server."""
    for spec in installed_services():
        with grpc.insecure_channel(embedded_platform.address(spec.grpc_port)) as channel:
            # Any: the health stubs' typing has no Check method on HealthStub.
            health: Any = health_pb2_grpc.HealthStub(channel)
            for name in ("", spec.full_service_name):
                reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, (spec.name, name)


def test_reflection_v1_describes_every_service_and_method(
    embedded_platform: EmbeddedPlatform,
) -> None:
    """grpcurl-style discovery (v1) works without proto files, down to each method's name."""
    for spec in installed_services():
        address = embedded_platform.address(spec.grpc_port)
        reply = _ask_v1(address, list_services="")
        listed = {service.name for service in reply.list_services_response.service}
        assert {spec.full_service_name, "grpc.health.v1.Health"} <= listed
        service_file = _ask_v1(address, file_containing_symbol=spec.full_service_name)
        methods = _methods(service_file, spec.full_service_name)
        assert methods
        for method in methods:
            reply = _ask_v1(address, file_containing_symbol=f"{spec.full_service_name}.{method}")
            assert reply.HasField("file_descriptor_response"), (spec.name, method, reply)


def test_banner_names_every_endpoint(embedded_platform: EmbeddedPlatform) -> None:
    """The run command prints each endpoint and an example call."""
    text = embedded_platform.text()
    for spec in installed_services():
        assert embedded_platform.address(spec.grpc_port) in text
    assert "grpcurl" in text
