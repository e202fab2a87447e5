"""meshcore: the shared gRPC runtime of Zoptal mesh.

The public names below load lazily (PEP 562): ``import meshcore`` opens no socket, thread or
pool and imports neither grpc nor SQLAlchemy until a name is used, which keeps Celery workers
fork-safe and CLI start-up quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # errors
    "MeshError": "meshcore.errors",
    "InvalidArgument": "meshcore.errors",
    "NotFound": "meshcore.errors",
    "AlreadyExists": "meshcore.errors",
    "Unauthenticated": "meshcore.errors",
    "PermissionDenied": "meshcore.errors",
    "FailedPrecondition": "meshcore.errors",
    "Aborted": "meshcore.errors",
    "ResourceExhausted": "meshcore.errors",
    "Unavailable": "meshcore.errors",
    "DeadlineExceeded": "meshcore.errors",
    "Internal": "meshcore.errors",
    # time
    "Clock": "meshcore.clock",
    "SYSTEM_CLOCK": "meshcore.clock",
    # settings
    "ServiceSettings": "meshcore.settings",
    "Secret": "meshcore.settings",
    "SettingsError": "meshcore.settings",
    "env_field": "meshcore.settings",
    # database
    "Database": "meshcore.db",
    "new_metadata": "meshcore.db",
    "run_migrations": "meshcore.migrations",
    # server
    "MeshServer": "meshcore.server",
    "ServiceRegistration": "meshcore.server",
    "run": "meshcore.server",
    "HealthServicer": "meshcore.health",
    "HealthMonitor": "meshcore.health",
    "HttpServer": "meshcore.http",
    "HttpResponse": "meshcore.http",
    # request context
    "Principal": "meshcore.context",
    "current_principal": "meshcore.context",
    "require_principal": "meshcore.context",
    # tokens
    "TokenVerifier": "meshcore.jwt",
    "InvalidToken": "meshcore.jwt",
    "StaticKeys": "meshcore.jwt",
    "RemoteJwks": "meshcore.jwks",
    # interceptors (the seed's names)
    "AuthInterceptor": "meshcore.interceptors.auth",
    "RateLimitInterceptor": "meshcore.interceptors.rate_limit",
    "LoggingInterceptor": "meshcore.interceptors.logging",
    "MetricsInterceptor": "meshcore.interceptors.metrics",
    "TracingInterceptor": "meshcore.interceptors.tracing",
    "ErrorMappingInterceptor": "meshcore.interceptors.errors",
    "build_server_chain": "meshcore.interceptors.chain",
    # discovery, balancing and resilience (the seed's names)
    "ServiceDiscovery": "meshcore.discovery.registry",
    "KubernetesServiceDiscovery": "meshcore.discovery.kubernetes",
    "CircuitBreaker": "meshcore.resilience.breaker",
    "CircuitOpenError": "meshcore.resilience.breaker",
    "retry_with_backoff": "meshcore.resilience.retry",
    "with_timeout": "meshcore.resilience.timeouts",
    "validate_response": "meshcore.resilience.timeouts",
    "ServiceMeshUtils": "meshcore.resilience.utils",
    "GrpcClientManager": "meshcore.client_manager",
    "create_grpc_client_manager": "meshcore.client_manager",
    "ServiceMesh": "meshcore.mesh",
    "create_service_mesh": "meshcore.mesh",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'meshcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from meshcore.client_manager import (
        GrpcClientManager as GrpcClientManager,
        create_grpc_client_manager as create_grpc_client_manager,
    )
    from meshcore.clock import (
        SYSTEM_CLOCK as SYSTEM_CLOCK,
        Clock as Clock,
    )
    from meshcore.context import (
        Principal as Principal,
        current_principal as current_principal,
        require_principal as require_principal,
    )
    from meshcore.db import (
        Database as Database,
        new_metadata as new_metadata,
    )
    from meshcore.discovery.kubernetes import (
        KubernetesServiceDiscovery as KubernetesServiceDiscovery,
    )
    from meshcore.discovery.registry import (
        ServiceDiscovery as ServiceDiscovery,
    )
    from meshcore.errors import (
        Aborted as Aborted,
        AlreadyExists as AlreadyExists,
        DeadlineExceeded as DeadlineExceeded,
        FailedPrecondition as FailedPrecondition,
        Internal as Internal,
        InvalidArgument as InvalidArgument,
        MeshError as MeshError,
        NotFound as NotFound,
        PermissionDenied as PermissionDenied,
        ResourceExhausted as ResourceExhausted,
        Unauthenticated as Unauthenticated,
        Unavailable as Unavailable,
    )
    from meshcore.health import (
        HealthMonitor as HealthMonitor,
        HealthServicer as HealthServicer,
    )
    from meshcore.http import (
        HttpResponse as HttpResponse,
        HttpServer as HttpServer,
    )
    from meshcore.interceptors.auth import (
        AuthInterceptor as AuthInterceptor,
    )
    from meshcore.interceptors.chain import (
        build_server_chain as build_server_chain,
    )
    from meshcore.interceptors.errors import (
        ErrorMappingInterceptor as ErrorMappingInterceptor,
    )
    from meshcore.interceptors.logging import (
        LoggingInterceptor as LoggingInterceptor,
    )
    from meshcore.interceptors.metrics import (
        MetricsInterceptor as MetricsInterceptor,
    )
    from meshcore.interceptors.rate_limit import (
        RateLimitInterceptor as RateLimitInterceptor,
    )
    from meshcore.interceptors.tracing import (
        TracingInterceptor as TracingInterceptor,
    )
    from meshcore.jwks import (
        RemoteJwks as RemoteJwks,
    )
    from meshcore.jwt import (
        InvalidToken as InvalidToken,
        StaticKeys as StaticKeys,
        TokenVerifier as TokenVerifier,
    )
    from meshcore.mesh import (
        ServiceMesh as ServiceMesh,
        create_service_mesh as create_service_mesh,
    )
    from meshcore.migrations import (
        run_migrations as run_migrations,
    )
    from meshcore.resilience.breaker import (
        CircuitBreaker as CircuitBreaker,
        CircuitOpenError as CircuitOpenError,
    )
    from meshcore.resilience.retry import (
        retry_with_backoff as retry_with_backoff,
    )
    from meshcore.resilience.timeouts import (
        validate_response as validate_response,
        with_timeout as with_timeout,
    )
    from meshcore.resilience.utils import (
        ServiceMeshUtils as ServiceMeshUtils,
    )
    from meshcore.server import (
        MeshServer as MeshServer,
        ServiceRegistration as ServiceRegistration,
        run as run,
    )
    from meshcore.settings import (
        Secret as Secret,
        ServiceSettings as ServiceSettings,
        SettingsError as SettingsError,
        env_field as env_field,
    )
