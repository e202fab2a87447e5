"""Notification settings: broker choice per mode and the checks that keep delivery safe."""

from __future__ import annotations

import pytest
from meshcore.settings import SettingsError
from zoptal_notification.settings import NotificationSettings

PRODUCTION = {
    "ZOPTAL_ENV": "production",
    "SERVICE_CREDENTIALS_FILE": "/run/zoptal/identity/credentials.json",
    "DATABASE_URL": "postgresql+asyncpg://db/notification",
}


def test_the_embedded_broker_is_sqlite_in_the_data_dir() -> None:
    """No Redis: kombu's SQLAlchemy transport on a file next to the service database."""
    settings = NotificationSettings.from_env({"DATA_DIR": "/var/zoptal"})
    assert settings.celery_broker_url == "sqla+sqlite:////var/zoptal/celery-broker.db"
    assert (settings.grpc_port, settings.metrics_port) == (4004, 9404)


def test_redis_is_the_broker_when_redis_is_configured() -> None:
    """With REDIS_URL and no CELERY_BROKER_URL, Celery uses Redis."""
    settings = NotificationSettings.from_env({"REDIS_URL": "redis://redis:6379/1"})
    assert settings.celery_broker_url == "redis://redis:6379/1"


def test_an_explicit_broker_url_wins() -> None:
    """CELERY_BROKER_URL overrides the derived broker."""
    settings = NotificationSettings.from_env(
        {"REDIS_URL": "redis://redis:6379/1", "CELERY_BROKER_URL": "redis://broker:6379/2"}
    )
    assert settings.celery_broker_url == "redis://broker:6379/2"


def test_production_refuses_the_sqlite_broker() -> None:
    """The embedded broker cannot be shared by pods."""
    with pytest.raises(SettingsError, match="CELERY_BROKER_URL"):
        NotificationSettings.from_env(PRODUCTION)
    settings = NotificationSettings.from_env({**PRODUCTION, "CELERY_BROKER_URL": "redis://r:6379"})
    assert settings.is_production


def test_the_claim_lease_must_outlast_provider_timeouts() -> None:
    """Otherwise a slow but live delivery could be taken over and sent twice."""
    with pytest.raises(SettingsError, match="DELIVERY_LEASE_SECONDS"):
        NotificationSettings.from_env({"DELIVERY_LEASE_SECONDS": "5", "SMTP_TIMEOUT_SECONDS": "10"})


@pytest.mark.parametrize("threads", ["0", "-1", "65"])
def test_the_worker_runs_between_one_and_64_deliveries_at_once(threads: str) -> None:
    with pytest.raises(SettingsError, match="WORKER_THREADS"):
        NotificationSettings.from_env({"WORKER_THREADS": threads})
    assert NotificationSettings.from_env({"WORKER_THREADS": "64"}).worker_threads == 64
