"""What a client of the platform does in the fault tests, through meshcore's real client stack.

Calls go through ``GrpcClientManager`` and the typed clients of ``zoptal.clients``: discovery
of every replica, p2c balancing, per-endpoint breakers, the retry policy each proto declares,
deadlines. Users are registered and logged in through Auth; operator-style calls (reading
analytics, sending email) carry the token Auth issued for the operator's service account, which
the cluster's admin created (``clients.operator``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from meshcore.client_manager import GrpcClientManager, create_grpc_client_manager
from meshcore.discovery import ServiceDiscovery
from zoptal.clients import (
    AnalyticsServiceClient,
    AuthServiceClient,
    BillingServiceClient,
    NotificationServiceClient,
    ProjectServiceClient,
)

from tests.faults.cluster import Cluster
from tests.faults.operator import Operator

__all__ = ["Clients", "User", "open_clients", "rpc_code"]

PASSWORD = "violet tractor harbour 42"
Metadata = Sequence[tuple[str, str]]


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
    operator_tool: Operator

    @property
    def operator(self) -> Metadata:
        """The operator's current service token (renewed before each test, see conftest)."""
        return self.operator_tool.metadata

    async def new_user(self, *, plan: str = "enterprise") -> User:
        """Register, log in and (by default) move to the plan without project limits."""
        email = f"fault-{uuid.uuid4().hex[:12]}@example.com"
        registered = await self.auth.register_user(email, PASSWORD, timeout_ms=10_000)
        login = await self.auth.login(email, PASSWORD, timeout_ms=10_000)
        user = User(registered.user.id, email, (("authorization", f"Bearer {login.access_token}"),))
        if plan != "free":
            # Paid plans are paid: the cluster's Billing takes test-mode payments, approved for
            # this token and confirmed asynchronously, so wait until the plan is in force.
            await self.billing.change_subscription(
                user.user_id,
                plan,
                payment_token="tok_test_approve",
                metadata=user.metadata,
                timeout_ms=10_000,
            )
            for _ in range(150):
                reply = await self.billing.get_user_subscription(
                    user.user_id, metadata=user.metadata, timeout_ms=10_000
                )
                if reply.subscription.plan.id == plan:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"plan {plan!r} not in force: {reply.subscription}")
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
    assert cluster.operator is not None, "the cluster creates its operator when it starts"
    async with manager:
        yield Clients(
            manager,
            AuthServiceClient(manager),
            ProjectServiceClient(manager),
            BillingServiceClient(manager),
            NotificationServiceClient(manager),
            AnalyticsServiceClient(manager),
            cluster.operator,
        )
