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
    from meshcore.clock import (
        SYSTEM_CLOCK as SYSTEM_CLOCK,
    )
    from meshcore.clock import (
        Clock as Clock,
    )
    from meshcore.db import (
        Database as Database,
    )
    from meshcore.db import (
        new_metadata as new_metadata,
    )
    from meshcore.errors import (
        Aborted as Aborted,
    )
    from meshcore.errors import (
        AlreadyExists as AlreadyExists,
    )
    from meshcore.errors import (
        DeadlineExceeded as DeadlineExceeded,
    )
    from meshcore.errors import (
        FailedPrecondition as FailedPrecondition,
    )
    from meshcore.errors import (
        Internal as Internal,
    )
    from meshcore.errors import (
        InvalidArgument as InvalidArgument,
    )
    from meshcore.errors import (
        MeshError as MeshError,
    )
    from meshcore.errors import (
        NotFound as NotFound,
    )
    from meshcore.errors import (
        PermissionDenied as PermissionDenied,
    )
    from meshcore.errors import (
        ResourceExhausted as ResourceExhausted,
    )
    from meshcore.errors import (
        Unauthenticated as Unauthenticated,
    )
    from meshcore.errors import (
        Unavailable as Unavailable,
    )
    from meshcore.health import (
        HealthMonitor as HealthMonitor,
    )
    from meshcore.health import (
        HealthServicer as HealthServicer,
    )
    from meshcore.http import (
        HttpResponse as HttpResponse,
    )
    from meshcore.http import (
        HttpServer as HttpServer,
    )
    from meshcore.migrations import (
        run_migrations as run_migrations,
    )
    from meshcore.server import (
        MeshServer as MeshServer,
    )
    from meshcore.server import (
        ServiceRegistration as ServiceRegistration,
    )
    from meshcore.server import (
        run as run,
    )
    from meshcore.settings import (
        Secret as Secret,
    )
    from meshcore.settings import (
        ServiceSettings as ServiceSettings,
    )
    from meshcore.settings import (
        SettingsError as SettingsError,
    )
    from meshcore.settings import (
        env_field as env_field,
    )
