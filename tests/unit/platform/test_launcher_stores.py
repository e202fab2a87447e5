"""How ``make run`` turns ZOPTAL_POSTGRES_URL and ZOPTAL_REDIS_URL into each process's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from zoptal_platform.catalogue import SERVICES
from zoptal_platform.launcher import PlatformLayout
from zoptal_platform.stores import ExternalStores, StoreConfigError

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/3"


def _layout(env: dict[str, str]) -> PlatformLayout:
    return PlatformLayout(
        Path("/tmp/zoptal"), services=SERVICES, stores=ExternalStores.from_env(env)
    )


def test_without_the_variables_every_service_keeps_sqlite_and_the_sqlite_broker() -> None:
    """The stores add nothing (each service defaults to its SQLite file); Celery uses SQLite."""
    layout = _layout({})
    assert layout.stores.variables("auth") == {}
    assert layout.environment(SERVICES[0])["CELERY_BROKER_URL"].startswith("sqla+sqlite:///")


def test_postgres_gives_each_service_its_own_prefixed_database() -> None:
    """One database per service, named by the prefix, on the server of ZOPTAL_POSTGRES_URL."""
    layout = _layout({"ZOPTAL_POSTGRES_URL": POSTGRES, "ZOPTAL_DATABASE_PREFIX": "e2e_x_"})
    urls = {spec.name: layout.environment(spec)["DATABASE_URL"] for spec in SERVICES}
    assert urls == {spec.name: f"{POSTGRES}/e2e_x_{spec.name}" for spec in SERVICES}


def test_a_plain_postgresql_url_gets_the_asyncpg_driver_and_keeps_no_admin_path() -> None:
    """``postgresql://host/postgres`` works too: services get asyncpg URLs to their own database."""
    stores = ExternalStores.from_env({"ZOPTAL_POSTGRES_URL": "postgresql://u@db:5432/postgres"})
    assert stores.database_url("billing") == "postgresql+asyncpg://u@db:5432/zoptal_billing"


def test_redis_becomes_every_process_redis_and_the_celery_broker() -> None:
    """REDIS_URL and CELERY_BROKER_URL both point at ZOPTAL_REDIS_URL, for services and worker."""
    stores = ExternalStores.from_env({"ZOPTAL_REDIS_URL": REDIS, "ZOPTAL_POSTGRES_URL": POSTGRES})
    worker = stores.variables("notification")
    assert worker == {
        "DATABASE_URL": f"{POSTGRES}/zoptal_notification",
        "REDIS_URL": REDIS,
        "CELERY_BROKER_URL": REDIS,
    }
    env = PlatformLayout(Path("/tmp/zoptal"), services=SERVICES, stores=stores).environment(None)
    assert (env["REDIS_URL"], env["CELERY_BROKER_URL"]) == (REDIS, REDIS)


@pytest.mark.parametrize(
    "env",
    [
        {"ZOPTAL_POSTGRES_URL": "mysql://root@db/x"},
        {"ZOPTAL_POSTGRES_URL": POSTGRES, "ZOPTAL_DATABASE_PREFIX": 'x"; DROP DATABASE y; --'},
        {"ZOPTAL_POSTGRES_URL": POSTGRES, "ZOPTAL_DATABASE_PREFIX": "Upper_"},
        {"ZOPTAL_REDIS_URL": "127.0.0.1:6379"},
    ],
)
def test_a_bad_store_variable_is_refused_before_anything_starts(env: dict[str, str]) -> None:
    """A wrong scheme, or a prefix that is not a plain identifier, raises StoreConfigError."""
    with pytest.raises(StoreConfigError):
        ExternalStores.from_env(env)
