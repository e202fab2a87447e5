"""What a client of the platform does in the fault tests, through meshcore's real client stack.

Calls go through ``GrpcClientManager`` and the typed clients of ``zoptal.clients``: discovery
of every replica, p2c balancing, per-endpoint breakers, the retry policy each proto declares,
deadlines. Users are registered and logged in through Auth; operator-style calls (reading
analytics, sending email) carry a seed-style ``x-service-token`` signed with the cluster's
``SERVICE_TOKEN_SECRET``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
from meshcore.client_manager import GrpcClientManager, create_grpc_client_manager
from meshcore.discovery import ServiceDiscovery
from zoptal.clients import (
    AnalyticsServiceClient,
    AuthServiceClient,
    BillingServiceClient,
    NotificationServiceClient,
    ProjectServiceClient,
)

from tests.faults.cluster import SERVICE_TOKEN_SECRET, Cluster

__all__ = ["Clients", "User", "open_clients", "rpc_code", "service_metadata"]

PASSWORD = "violet tractor harbour 42"
Metadata = Sequence[tuple[str, str]]


def service_metadata(permissions: Sequence[str], service_id: str = "fault-tests") -> Metadata:
    now = int(time.time())
    claims = {
        "sub": service_id,
        "serviceId": service_id,
        "serviceName": "Fault tests",
        "permissions": list(permissions),
        "typ": "service",
        "iat": now,
        "exp": now + 3600,
    }
    return (("x-service-token", jwt.encode(claims, SERVICE_TOKEN_SECRET, algorithm="HS256")),)


OPERATOR = service_metadata(
    [
        "analytics:read",
        "analytics:write",
        "notification:send",
        "notification:read",
        "billing:read",
        "project:read",
    ]
)


def rpc_code(error: BaseException) -> grpc.StatusCode | None:
    """The status of a failed call: a channel's ``AioRpcError`` (``code()``) or a meshcore
    ``MeshError`` raised on the client side (``code``: no healthy endpoint, open breaker)."""
    code = getattr(error, "code", None)
    if isinstance(code, grpc.StatusCode):
        return code
    if callable(code):
        with contextlib.suppress(Exception):
            value = code()
            if isinstance(value, grpc.StatusCode):
                return value
    return None


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    metadata: Metadata


@dataclass
class Clients:
    manager: GrpcClientManager
    auth: AuthServiceClient
    project: ProjectServiceClient
    billing: BillingServiceClient
    notification: NotificationServiceClient
    analytics: AnalyticsServiceClient

    async def new_user(self, *, plan: str = "enterprise") -> User:
        """Register, log in and (by default) move to the plan without project limits."""
        email = f"fault-{uuid.uuid4().hex[:12]}@example.com"
        registered = await self.auth.register_user(email, PASSWORD, timeout_ms=10_000)
        login = await self.auth.login(email, PASSWORD, timeout_ms=10_000)
        user = User(registered.user.id, email, (("authorization", f"Bearer {login.access_token}"),))
        if plan != "free":
            await self.billing.change_subscription(
                user.user_id, plan, metadata=user.metadata, timeout_ms=10_000
            )
        return user


@contextlib.asynccontextmanager
async def open_clients(cluster: Cluster, **manager_options: Any) -> AsyncIterator[Clients]:
    """Typed clients on one client manager; ``manager_options`` override its defaults."""
    services = {
        name: {"endpoints": list(cluster.address_of(name))}
        for name in ("auth", "project", "billing", "notification", "analytics")
    }
    # Health checks every 250 ms: the client notices a replica leaving within a second, as a
    # mesh sidecar would; a refused call is retried by the real policy meanwhile.
    discovery = ServiceDiscovery(
        health_check_interval=250, unhealthy_threshold=2, healthy_threshold=1, timeout=1_000
    )
    options: dict[str, Any] = {"discovery": discovery, "timeout": 10_000}
    options.update(manager_options)
    manager = create_grpc_client_manager(services, **options)
    async with manager:
        yield Clients(
            manager,
            AuthServiceClient(manager),
            ProjectServiceClient(manager),
            BillingServiceClient(manager),
            NotificationServiceClient(manager),
            AnalyticsServiceClient(manager),
        )
