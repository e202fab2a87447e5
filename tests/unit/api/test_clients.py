"""Typed clients: every RPC of every service is bound, with the proto's retry safety."""

from __future__ import annotations

import inspect
import re

import pytest
from meshcore.client_manager import create_grpc_client_manager
from zoptal.clients import (
    AnalyticsServiceClient,
    AuthServiceClient,
    BillingServiceClient,
    NotificationServiceClient,
    ProjectServiceClient,
    TypedClient,
)

CLIENTS: list[type[TypedClient]] = [
    AuthServiceClient,
    ProjectServiceClient,
    BillingServiceClient,
    NotificationServiceClient,
    AnalyticsServiceClient,
]
ADDRESSES = {
    "auth": "127.0.0.1:4000",
    "project": "127.0.0.1:4001",
    "billing": "127.0.0.1:4003",
    "notification": "127.0.0.1:4004",
    "analytics": "127.0.0.1:4005",
}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().replace("s_m_s", "sms")


@pytest.mark.parametrize("client_type", CLIENTS)
def test_every_rpc_has_a_typed_method(client_type: type[TypedClient]) -> None:
    """Each RPC in the proto (SendSMS -> send_sms) has an async method on its client."""
    service = client_type.file_descriptor.services_by_name[client_type.grpc_service]
    for method in service.methods:
        python_name = snake(method.name)
        assert inspect.iscoroutinefunction(getattr(client_type, python_name, None)), python_name


@pytest.mark.parametrize("client_type", CLIENTS)
def test_clients_bind_to_their_service_with_its_health_name(
    client_type: type[TypedClient],
) -> None:
    """A client binds every unary RPC and asks grpc.health.v1 about its own service."""
    manager = create_grpc_client_manager(ADDRESSES, interceptors=())
    client = client_type(manager)
    full_name = client.file_descriptor.services_by_name[client.grpc_service].full_name
    instance = manager.discovery.get_instances(client.service)[0]
    assert instance.metadata["health_service"] == full_name
    assert client.rpc(next(iter(client._unary))).path.startswith(f"/{full_name}/")


@pytest.mark.parametrize(
    ("client_type", "method", "retry_safe"),
    [
        (AuthServiceClient, "ValidateToken", True),
        (AuthServiceClient, "RevokeToken", True),
        (AuthServiceClient, "Login", False),
        (AuthServiceClient, "RegisterUser", False),
        (ProjectServiceClient, "GetProject", True),
        (ProjectServiceClient, "CreateProject", False),
        (ProjectServiceClient, "UpdateProject", False),
        (ProjectServiceClient, "DeleteProject", True),
        (BillingServiceClient, "RecordUsage", True),
        (BillingServiceClient, "CheckSubscriptionLimits", True),
        (NotificationServiceClient, "SendEmail", True),
        (AnalyticsServiceClient, "TrackEvent", False),
        (AnalyticsServiceClient, "GetAnalytics", True),
    ],
)
def test_retry_safety_comes_from_the_proto_idempotency_level(
    client_type: type[TypedClient], method: str, retry_safe: bool
) -> None:
    """NO_SIDE_EFFECTS and IDEMPOTENT methods may be retried; the rest are sent once."""
    client = client_type(create_grpc_client_manager(ADDRESSES, interceptors=()))
    assert client.rpc(method).idempotent is retry_safe


def test_client_accepts_a_service_mesh() -> None:
    """AuthServiceClient(mesh) works like AuthServiceClient(mesh.manager)."""
    from meshcore.mesh import create_service_mesh

    mesh = create_service_mesh(
        {"services": {"auth-service": {"host": "127.0.0.1", "port": 4000}}},
        environ={},
        interceptors=(),
    )
    assert AuthServiceClient(mesh).manager is mesh.manager


def test_replicas_that_join_later_are_probed_for_the_same_service() -> None:
    """A replica registered after the client was made is health-checked for AuthService too."""
    from meshcore.discovery import ServiceInstance

    manager = create_grpc_client_manager(ADDRESSES, interceptors=())
    AuthServiceClient(manager)
    manager.discovery.register_service(
        ServiceInstance(id="auth-9", name="auth", host="127.0.0.1", port=4090)
    )
    late = manager.discovery.get_instances("auth")[-1]
    assert late.id == "auth-9"
    assert late.metadata["health_service"] == "zoptal.auth.v1.AuthService"
