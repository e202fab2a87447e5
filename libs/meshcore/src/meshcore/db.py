"""Async SQLAlchemy 2.0 for meshcore services: SQLite (embedded) or PostgreSQL (compose, k8s).

``Database(url)`` owns one engine and one session factory. ``session()`` is the unit of work:
it commits when the block ends, rolls back when it raises, and turns every connection-level
failure (server down, refused, timed out, locked) into ``meshcore.errors.Unavailable`` so a
client sees UNAVAILABLE, never INTERNAL, while the database is away.

SQLite is tuned for a server: WAL (readers never block the writer), foreign keys on, a busy
timeout, and ``BEGIN IMMEDIATE`` for every transaction so read-modify-write blocks cannot lose
updates (each service has its own file and modest write rates, so serialising writers is cheap).
The SQLite file is created 0600 in a 0700 folder before SQLite first opens it (whatever the
umask: user rows, Auth's password hashes), and SQLite gives its ``-wal`` and ``-shm`` files the
database file's mode.

PostgreSQL gets bounded pools and timeouts on connect, pool checkout and statements, so no call
waits forever when the server stops. A pooled connection is pinged before use only when it sat
idle for ``ping_idle_seconds`` (SQLAlchemy's ``pool_pre_ping`` would cost three round trips,
BEGIN, a ping and ROLLBACK, on every checkout); one the driver already knows closed is replaced
without a ping. The pool has ten connections and no overflow: under load, connections beyond the
pool were opened (a TLS attempt, authentication) and closed again call after call, which cost
more than waiting for one of ten, already more than PostgreSQL on a few cores answers at once.
Hot paths skip sessions altogether with ``meshcore.statements``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from meshcore.errors import MeshError, Unavailable
from meshcore.observability.runtime_metrics import observe_pool
from meshcore.private_files import private_directory, private_file

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "is_connection_error",
    "make_declarative_base",
    "new_metadata",
    "unavailable_from",
]

logger = logging.getLogger(__name__)

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so Alembic autogenerate and downgrades can name them."""


def new_metadata() -> MetaData:
    """A ``MetaData`` with the shared naming convention (one per service)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def make_declarative_base() -> type[DeclarativeBase]:
    """A fresh declarative base with its own ``new_metadata()``.

    Typed code may prefer writing it out, which mypy understands fully::

        class Base(DeclarativeBase):
            metadata = new_metadata()
    """

    class Base(DeclarativeBase):
        metadata = new_metadata()

    return Base


# -- connection-level failures -> Unavailable ---------------------------------------------------

_SQLITE_SCHEMA_PROBLEMS = ("no such table", "no such column", "syntax error", "has no column")


def _asyncpg_connection_error_types() -> tuple[type[BaseException], ...]:
    try:
        import asyncpg.exceptions as pg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - asyncpg is a dependency, but stay importable
        return ()
    return (
        pg.PostgresConnectionError,  # class 08: connection exceptions
        pg.ConnectionDoesNotExistError,
        pg.InterfaceError,  # "connection is closed", "another operation is in progress"
        pg.CannotConnectNowError,  # 57P03: starting up / shutting down
        pg.AdminShutdownError,  # 57P01
        pg.CrashShutdownError,  # 57P02
        pg.TooManyConnectionsError,  # 53300
        pg.QueryCanceledError,  # 57014: our statement_timeout fired
        # The protocol lost track of the connection's state, as when the server's goodbye
        # (a terminated backend) arrives between two statements: the connection is unusable.
        pg.InternalClientError,
    )


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 16:
        seen.add(id(current))
        chain.append(current)
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            current = orig
        else:
            current = current.__cause__ or current.__context__
    return chain


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` means "the database cannot be reached or answer now", not a bad query."""
    pg_types = _asyncpg_connection_error_types()
    for cause in _causes(exc):
        if isinstance(cause, MeshError):
            return False
        if isinstance(cause, OSError | TimeoutError | asyncio.TimeoutError):
            return True
        if pg_types and isinstance(cause, pg_types):
            return True
        if isinstance(cause, sqlalchemy.exc.TimeoutError):  # pool checkout timed out
            return True
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(cause, sqlalchemy.exc.OperationalError):
            message = str(cause.orig or cause).lower()
            return not any(problem in message for problem in _SQLITE_SCHEMA_PROBLEMS)
    return False


def unavailable_from(exc: BaseException) -> Unavailable | None:
    """``Unavailable("database unavailable")`` when ``exc`` is a connection-level failure."""
    if is_connection_error(exc):
        return Unavailable.of_dependency("database", "database unavailable")
    return None


@contextlib.asynccontextmanager
async def _unavailable_when_unreachable() -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        unavailable = unavailable_from(exc)
        if unavailable is not None:
            logger.warning("database unavailable: %s", type(exc).__name__)
            raise unavailable from exc
        raise


# -- the database ---------------------------------------------------------------------------------


class Database:
    """One engine, one session factory, connection failures mapped to ``Unavailable``.

    Constructing it opens nothing: connections are made on first use.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        connect_timeout: float = 5.0,
        statement_timeout: float = 15.0,
        pool_size: int = 10,
        max_overflow: int = 0,
        pool_timeout: float = 5.0,
        sqlite_busy_timeout: float = 5.0,
        application_name: str = "meshcore",
        ping_idle_seconds: float = 1.0,
    ) -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect = parsed.get_backend_name()
        self.ping_timeout = connect_timeout + 1.0
        options: dict[str, Any] = {"echo": echo}
        sqlite_file: Path | None = None
        if self.dialect == "sqlite":
            sqlite_file = _sqlite_file(parsed.database, parsed.query)
            if sqlite_file is not None:
                # Missing folders are made 0700; an existing one is the caller's (a service's
                # data folder is made private by whoever prepares it, the launcher here).
                private_directory(sqlite_file.parent, restrict_existing=False)
            # Python's sqlite3 default would wait 5 s for a lock too; say so explicitly.
            options["connect_args"] = {"timeout": sqlite_busy_timeout}
        elif self.dialect == "postgresql":
            options.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,  # waiting for a free connection is bounded too
                pool_recycle=1800,  # outlive neither PgBouncer nor idle firewall timeouts
                connect_args={
                    "timeout": connect_timeout,  # asyncpg connect (default would be 60 s)
                    "command_timeout": statement_timeout + 1.0,  # client side: never hang
                    "server_settings": {
                        "application_name": application_name,
                        # server side: cancel runaway statements and abandoned transactions
                        "statement_timeout": str(int(statement_timeout * 1000)),
                        "idle_in_transaction_session_timeout": "60000",
                    },
                },
            )
        else:
            raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.dialect == "sqlite":
            _tune_sqlite(self.engine, sqlite_file, busy_timeout_ms=int(sqlite_busy_timeout * 1000))
        else:
            _ping_when_idle(self.engine, ping_idle_seconds)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        observe_pool(self.engine.sync_engine.pool, application_name)

    def __repr__(self) -> str:
        from meshcore.settings import redact_url

        return f"Database({redact_url(self.url)!r})"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commit at the end, roll back on error, ``Unavailable`` if unreachable."""
        session = self.sessionmaker()
        try:
            yield session
            await session.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await session.rollback()
            unavailable = unavailable_from(exc) if isinstance(exc, Exception) else None
            if unavailable is not None:
                logger.warning("database unavailable: %s", type(exc).__name__)
                raise unavailable from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                await session.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A raw ``AsyncConnection`` in a transaction (committed at the end), errors mapped."""
        async with _unavailable_when_unreachable(), self.engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        """Round-trip ``SELECT 1``; raise ``Unavailable`` when the database does not answer."""
        try:
            async with asyncio.timeout(self.ping_timeout), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise (
                unavailable_from(exc)
                or Unavailable.of_dependency("database", "database unavailable")
            ) from exc

    async def create_all(self, metadata: MetaData) -> None:
        """Create every table of ``metadata`` (tests; services use Alembic migrations)."""
        async with self.connection() as conn:
            await conn.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        """Close every pooled connection (on shutdown)."""
        await self.engine.dispose()


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Replace a pooled connection the driver knows closed; ping one idle for ``idle_seconds``.

    Raising ``DisconnectionError`` at checkout makes the pool drop that connection and hand out
    another (a new one, if need be). A connection in steady use is not pinged: a server that
    went away under load fails the statement (``Unavailable``, retryable), and SQLAlchemy then
    invalidates every connection older than that failure, as it would with ``pool_pre_ping``.
    """
    pool = engine.sync_engine.pool
    idle_since = "meshcore_idle_since"  # in ``record.info``, which lives as long as the connection

    @event.listens_for(pool, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[idle_since] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.driver_connection.is_closed():
            raise sqlalchemy.exc.DisconnectionError("the server closed this connection")
        returned = record.info.get(idle_since)
        if returned is None or time.monotonic() - returned < idle_seconds:
            return  # new, or in steady use
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise sqlalchemy.exc.DisconnectionError("the pooled connection is dead") from exc


def _sqlite_file(database: str | None, query: Any) -> Path | None:
    """The file a SQLite URL names, or ``None`` for in-memory and ``file:`` URI databases."""
    if not database or database == ":memory:" or query.get("uri") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _tune_sqlite(engine: AsyncEngine, sqlite_file: Path | None, *, busy_timeout_ms: int) -> None:
    if sqlite_file is not None:

        @event.listens_for(engine.sync_engine, "do_connect")
        def _create_private(*_args: Any) -> None:
            # Before every connect, not once: a file deleted while the service runs comes back
            # private too. SQLite would create it 0644 under the usual umask, and a chmod after
            # that would leave a moment in which another user could open it (private_files).
            # It never opens an existing file: closing that descriptor would drop the locks our
            # open connections hold on it, and other processes would delete the WAL under them.
            private_file(sqlite_file)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (the "begin" hook below) instead of the
        # sqlite3 module's implicit, DML-only BEGIN, which also breaks SAVEPOINTs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the RPC that made it answers OK, even on power loss.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
