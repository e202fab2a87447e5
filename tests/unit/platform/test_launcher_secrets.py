"""What each process the launcher starts may see of the launcher's own environment."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from zoptal_platform.catalogue import SERVICES
from zoptal_platform.launcher import PlatformLayout


def test_the_bootstrap_admin_password_reaches_auth_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """AUTH_BOOTSTRAP_* is Auth's: no other service, nor the worker, gets the admin password."""
    password = secrets.token_urlsafe(32)
    monkeypatch.setenv("AUTH_BOOTSTRAP_ADMIN_EMAIL", "root@example.com")
    monkeypatch.setenv("AUTH_BOOTSTRAP_ADMIN_PASSWORD", password)
    layout = PlatformLayout(Path("/tmp/zoptal"), services=SERVICES)
    by_name = {spec.name: layout.environment(spec) for spec in SERVICES}
    assert by_name["auth"]["AUTH_BOOTSTRAP_ADMIN_PASSWORD"] == password
    others = [env for name, env in by_name.items() if name != "auth"]
    others.append(layout.worker_environment())  # the Celery worker
    for env in others:
        assert password not in env.values()
        assert not any(name.startswith("AUTH_BOOTSTRAP_") for name in env)


def test_the_worker_serves_its_metrics_on_its_own_shifted_port() -> None:
    """9406 plus the offset, next to the services' 9400-9405."""
    layout = PlatformLayout(Path("/tmp/zoptal"), port_offset=100, services=SERVICES)
    worker = layout.worker_environment()
    assert worker["WORKER_METRICS_PORT"] == "9506"
    service_ports = {layout.environment(spec)["METRICS_PORT"] for spec in SERVICES}
    assert worker["WORKER_METRICS_PORT"] not in service_ports
