"""meshcore.db: which failures are outages (Unavailable) and which are not."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy.exc
from meshcore.db import is_connection_error, unavailable_from
from meshcore.errors import NotFound, Unavailable


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
