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
    others.append(layout.environment(None))  # the Celery worker
    for env in others:
        assert password not in env.values()
        assert not any(name.startswith("AUTH_BOOTSTRAP_") for name in env)
