"""The platform's services, their ports and how each one is started.

The single place the embedded launcher learns what to run; ports match docs/conventions.md.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    grpc_port: int
    metrics_port: int
    full_service_name: str
    extra_ports: dict[str, int] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return f"zoptal_{self.name}"

    @property
    def addr_variable(self) -> str:
        return f"{self.name.upper()}_ADDR"

    def is_installed(self) -> bool:
        """A service exists once its package has a runnable ``__main__``."""
        return importlib.util.find_spec(self.module) is not None and (
            importlib.util.find_spec(f"{self.module}.__main__") is not None
        )


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth", 4000, 9400, "zoptal.auth.v1.AuthService", {"AUTH_HTTP_PORT": 8080}),
    ServiceSpec("project", 4001, 9401, "zoptal.project.v1.ProjectService"),
    ServiceSpec("billing", 4003, 9403, "zoptal.billing.v1.BillingService"),
    ServiceSpec("notification", 4004, 9404, "zoptal.notification.v1.NotificationService"),
    ServiceSpec("analytics", 4005, 9405, "zoptal.analytics.v1.AnalyticsService"),
)


WORKER_METRICS_PORT = 9406
"""The Notification Celery worker's ``/metrics`` (its delivery outcomes and latency)."""


def installed_services() -> list[ServiceSpec]:
    return [spec for spec in SERVICES if spec.is_installed()]


def celery_worker_available() -> bool:
    return importlib.util.find_spec("zoptal_notification.worker") is not None
