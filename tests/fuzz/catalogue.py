"""Every RPC of every service, read from the generated descriptors: a new RPC is fuzzed for free."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from zoptal.analytics.v1 import analytics_pb2
from zoptal.auth.v1 import auth_pb2
from zoptal.billing.v1 import billing_pb2
from zoptal.notification.v1 import notification_pb2
from zoptal.project.v1 import project_pb2

__all__ = ["ALL_RPCS", "PROTECTED_RPCS", "PUBLIC_METHODS", "SERVICE_MODULES", "Rpc"]

# Listed by hand to name each service's channel; test_fuzzing_covers_every_rpc_of_every_service
# finds the generated services on its own and fails when one is missing here.
SERVICE_MODULES: dict[str, ModuleType] = {
    "auth": auth_pb2,
    "project": project_pb2,
    "billing": billing_pb2,
    "notification": notification_pb2,
    "analytics": analytics_pb2,
}
# Methods any caller may use without credentials (Auth hands credentials out). Written out, not
# read from the product: a method made public there would otherwise silently leave every token
# attack; test_public_methods_are_exactly_the_pinned_ones makes widening them a deliberate edit.
PUBLIC_METHODS = frozenset(
    {
        "/zoptal.auth.v1.AuthService/RegisterUser",
        "/zoptal.auth.v1.AuthService/Login",
        "/zoptal.auth.v1.AuthService/RefreshToken",
        "/zoptal.auth.v1.AuthService/IssueServiceToken",
        "/zoptal.auth.v1.AuthService/GetJwks",
        "/zoptal.auth.v1.AuthService/HealthCheck",
    }
)


@dataclass(frozen=True)
class Rpc:
    """One method: which service serves it and how its messages are built."""

    service: str  # short name: "auth", "project", ...
    method: MethodDescriptor

    @property
    def full_name(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def request_class(self) -> type[Any]:
        return GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Any]:
        return GetMessageClass(self.method.output_type)

    @property
    def client_streaming(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def public(self) -> bool:
        return self.full_name in PUBLIC_METHODS

    def __str__(self) -> str:
        return f"{self.service}.{self.method.name}"


def _rpcs() -> list[Rpc]:
    found: list[Rpc] = []
    for short, module in SERVICE_MODULES.items():
        for service in module.DESCRIPTOR.services_by_name.values():
            found.extend(Rpc(short, method) for method in service.methods)
    return found


ALL_RPCS: tuple[Rpc, ...] = tuple(_rpcs())
PROTECTED_RPCS: tuple[Rpc, ...] = tuple(rpc for rpc in ALL_RPCS if not rpc.public)
