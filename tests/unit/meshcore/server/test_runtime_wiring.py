"""Cheap imports, connection-error classification and the in-process server helper."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import grpc
import pytest
import sqlalchemy.exc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from meshcore.db import is_connection_error, unavailable_from
from meshcore.errors import NotFound, Unavailable
from meshcore.server import ServiceRegistration
from meshcore.testing import serve_in_process


def test_importing_meshcore_opens_nothing_and_loads_no_heavy_module() -> None:
    """``import meshcore`` starts no thread and imports neither grpc nor SQLAlchemy (fork-safe)."""
    probe = (
        "import sys, threading, meshcore\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('grpc', 'sqlalchemy', 'redis')]\n"
        "assert not heavy, heavy\n"
        "assert meshcore.ServiceSettings.__name__ == 'ServiceSettings'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def _wrapped(orig: BaseException) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        _wrapped(sqlite3.OperationalError("database is locked")),
        _wrapped(sqlite3.OperationalError("unable to open database file")),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
    ],
    ids=["refused", "timeout", "locked", "cannot-open", "pool-timeout", "interface"],
)
def test_connection_level_failures_become_unavailable(error: BaseException) -> None:
    """Anything meaning "the database cannot answer now" maps to UNAVAILABLE."""
    assert is_connection_error(error)
    mapped = unavailable_from(error)
    assert isinstance(mapped, Unavailable)
    assert mapped.message == "database unavailable"


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(sqlite3.OperationalError("no such table: users")),
        sqlalchemy.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE failed")),
        NotFound("user", "u-1"),
        ValueError("bad"),
    ],
    ids=["missing-table", "integrity", "domain-error", "bug"],
)
def test_query_and_domain_errors_are_not_outages(error: BaseException) -> None:
    """Schema bugs, constraint violations and domain errors keep their own meaning."""
    assert not is_connection_error(error)
    assert unavailable_from(error) is None


def test_a_connection_error_caught_as_the_cause_still_counts() -> None:
    """A failure wrapped by another exception is recognised through ``__cause__``."""
    outer = RuntimeError("query failed")
    outer.__cause__ = ConnectionResetError(104, "reset by peer")
    assert is_connection_error(outer)


async def test_in_process_server_uses_the_production_interceptors(
    echo_service: ServiceRegistration,
) -> None:
    """By default the helper serves behind the production chain: no credentials, no call."""
    async with serve_in_process([echo_service]) as (address, channel):
        assert address.startswith("127.0.0.1:")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/meshtest.Echo/Echo")(b"hi", timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_in_process_server_takes_explicit_interceptors(
    echo_service: ServiceRegistration,
) -> None:
    """Given interceptors replace the production chain (here: none at all)."""
    async with serve_in_process([echo_service], interceptors=[]) as (_, channel):
        assert await channel.unary_unary("/meshtest.Echo/Echo")(b"hi", timeout=5) == b"hi"
