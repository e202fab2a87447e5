"""Where the services are, and the typed clients that reach them.

Shared by the command line and the load generator so that both find the platform the way the
services find each other: ``--addr svc=host:port[,host:port...]`` first, then ``<SVC>_ADDR``
(the same variables the services read), then the embedded platform's ports (``make run``; the
port table is ``zoptal_platform.catalogue``, the one the launcher starts the services on, shifted
by ``ZOPTAL_PORT_OFFSET`` as the launcher shifts them).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from meshcore.client_manager import GrpcClientManager, default_client_interceptors
from meshcore.settings import parse_addresses
from zoptal.clients import (
    AnalyticsServiceClient,
    AuthServiceClient,
    BillingServiceClient,
    NotificationServiceClient,
    ProjectServiceClient,
)

# The launcher's port table.
from zoptal_platform.catalogue import SERVICES

__all__ = ["SERVICE_NAMES", "Clients", "health_service_name", "open_clients", "resolve_addresses"]

SERVICE_NAMES: tuple[str, ...] = tuple(spec.name for spec in SERVICES)
_BY_NAME = {spec.name: spec for spec in SERVICES}

Addresses = Mapping[str, tuple[str, ...]]


def health_service_name(service: str) -> str:
    """The ``grpc.health.v1`` name a service reports (``zoptal.auth.v1.AuthService``)."""
    name: str = _BY_NAME[service].full_service_name
    return name


def resolve_addresses(
    overrides: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, tuple[str, ...]]:
    """Every service's replica addresses; ``ValueError`` names the bad option or variable."""
    env = os.environ if environ is None else environ
    given: dict[str, tuple[str, ...]] = {}
    for item in overrides:
        service, sep, value = item.partition("=")
        service = service.strip().lower()
        if not sep or service not in _BY_NAME:
            raise ValueError(
                f"--addr {item!r}: expected SERVICE=HOST:PORT with SERVICE one of "
                f"{', '.join(SERVICE_NAMES)}"
            )
        try:
            given[service] = parse_addresses(value)
        except ValueError as error:
            raise ValueError(f"--addr {item!r}: {error}") from None
    offset_text = env.get("ZOPTAL_PORT_OFFSET") or "0"
    if not offset_text.isdigit():
        raise ValueError(f"ZOPTAL_PORT_OFFSET={offset_text!r}: expected a whole number")
    addresses: dict[str, tuple[str, ...]] = {}
    for spec in SERVICES:
        variable = spec.addr_variable
        if spec.name in given:
            addresses[spec.name] = given[spec.name]
        elif env.get(variable):
            try:
                addresses[spec.name] = parse_addresses(env[variable])
            except ValueError as error:
                raise ValueError(f"{variable}={env[variable]!r}: {error}") from None
        else:
            addresses[spec.name] = (f"127.0.0.1:{spec.grpc_port + int(offset_text)}",)
    return addresses


@dataclass(frozen=True)
class Clients:
    """One typed client per service, over one manager."""

    manager: GrpcClientManager
    auth: AuthServiceClient
    project: ProjectServiceClient
    billing: BillingServiceClient
    notification: NotificationServiceClient
    analytics: AnalyticsServiceClient


@asynccontextmanager
async def open_clients(
    addresses: Addresses, *, timeout_seconds: float, health_checks: bool = False
) -> AsyncIterator[Clients]:
    """The five typed clients on plaintext channels (a client outside the mesh reaches the
    services' GRPC_PORT, as compose publishes it and as an Istio ingress forwards to it).

    ``health_checks``: probe the replicas in the background and leave unhealthy ones out (a
    long-running load generator); a one-shot command skips it and calls straight away.
    """
    manager = GrpcClientManager(
        {name: list(replicas) for name, replicas in addresses.items()},
        interceptors=default_client_interceptors(metrics=False),
        timeout=timeout_seconds * 1000.0,
        health_checks=health_checks,
    )
    try:
        yield Clients(
            manager,
            AuthServiceClient(manager),
            ProjectServiceClient(manager),
            BillingServiceClient(manager),
            NotificationServiceClient(manager),
            AnalyticsServiceClient(manager),
        )
    finally:
        await manager.close()
