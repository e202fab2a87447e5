"""The README's run command brings every installed service to SERVING with reflection on."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from zoptal_platform.catalogue import installed_services

from tests.e2e.platform import EmbeddedPlatform


def _listed_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return {service.name for service in replies[0].list_services_response.service}


def test_every_installed_service_is_serving(embedded_platform: EmbeddedPlatform) -> None:
    """Each service answers grpc.health.v1 Check with SERVING for itself and for the server."""
    for spec in installed_services():
        with grpc.insecure_channel(embedded_platform.address(spec.grpc_port)) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", spec.full_service_name):
                reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, (spec.name, name)


def test_reflection_lists_each_service_and_health(embedded_platform: EmbeddedPlatform) -> None:
    """grpcurl-style discovery works without proto files on every service."""
    for spec in installed_services():
        listed = _listed_services(embedded_platform.address(spec.grpc_port))
        assert spec.full_service_name in listed
        assert "grpc.health.v1.Health" in listed


def test_banner_names_every_endpoint(embedded_platform: EmbeddedPlatform) -> None:
    """The run command prints each endpoint and an example call."""
    text = embedded_platform.text()
    for spec in installed_services():
        assert embedded_platform.address(spec.grpc_port) in text
    assert "grpcurl" in text
