"""The embedded platform, started once per test session the way the README starts it."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator

import pytest
from zoptal_platform.catalogue import installed_services

from tests.e2e.platform import (
    PORT_OFFSET,
    POSTGRES_PORT_OFFSET,
    EmbeddedPlatform,
    PlatformDidNotStart,
    launch_platform,
    port_open,
    shutdown_platform,
)
from tests.e2e.stores import (
    E2E_POSTGRES_URL,
    E2E_REDIS_DB,
    drop_databases,
    flushed_redis_db,
)
from tests.requirements import require_reachable


@pytest.fixture(scope="package")
def embedded_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPlatform]:
    data_dir = tmp_path_factory.mktemp("platform-data")
    try:
        platform = launch_platform(data_dir, PORT_OFFSET)
    except PlatformDidNotStart as error:
        pytest.fail(f"the platform did not start:\n{error}")
    try:
        yield platform
    finally:
        exit_code = shutdown_platform(platform)
    _assert_stopped_cleanly(platform, exit_code)


@pytest.fixture(scope="package")
def postgres_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPlatform]:
    """A second ``make run`` beside the first, every service on PostgreSQL and Redis.

    Its databases are fresh (a unique ``ZOPTAL_DATABASE_PREFIX``) and dropped afterwards; Redis
    is a database index of its own, flushed before and after.
    """
    require_reachable("PostgreSQL", "127.0.0.1", 5432)
    require_reachable("Redis", "127.0.0.1", 6379)
    prefix = f"zoptal_e2e_{uuid.uuid4().hex[:8]}_"
    redis_url = flushed_redis_db(E2E_REDIS_DB)
    data_dir = tmp_path_factory.mktemp("platform-postgres-data")
    env = {
        "ZOPTAL_POSTGRES_URL": E2E_POSTGRES_URL,
        "ZOPTAL_DATABASE_PREFIX": prefix,
        "ZOPTAL_REDIS_URL": redis_url,
    }
    try:
        try:
            platform = launch_platform(data_dir, POSTGRES_PORT_OFFSET, env)
        except PlatformDidNotStart as error:
            pytest.fail(f"the PostgreSQL platform did not start:\n{error}")
        try:
            yield platform
        finally:
            exit_code = shutdown_platform(platform)
        _assert_stopped_cleanly(platform, exit_code)
    finally:
        drop_databases(prefix)
        flushed_redis_db(E2E_REDIS_DB)


def _assert_stopped_cleanly(platform: EmbeddedPlatform, exit_code: int) -> None:
    # Ctrl-C must stop every service cleanly. make itself dies of the SIGINT (exit -2) after
    # waiting for the launcher, which reports the stop; afterwards no service port answers.
    assert exit_code in (0, -signal.SIGINT), platform.text()[-4000:]
    assert "stopped." in platform.text(), platform.text()[-4000:]
    for spec in installed_services():
        assert not port_open(platform.address(spec.grpc_port)), f"{spec.name} still running"
