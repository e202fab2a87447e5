"""Optional real data stores for the embedded platform: PostgreSQL and Redis instead of SQLite.

``ZOPTAL_POSTGRES_URL`` names a PostgreSQL server (``postgresql+asyncpg://user@host:port``; a
database in the path is only where the launcher connects to create the others). The launcher then
gives every service its own database, ``<ZOPTAL_DATABASE_PREFIX><service>`` (prefix default
``zoptal_``), creates the ones that do not exist yet and sets each service's ``DATABASE_URL``.
``ZOPTAL_REDIS_URL`` sets ``REDIS_URL`` for every process and makes it the Celery broker.
Unset, the platform keeps its SQLite files and SQLite broker under the data folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
from meshcore.settings import redact_url

__all__ = [
    "DEFAULT_DATABASE_PREFIX",
    "ENVIRONMENT_VARIABLES",
    "ExternalStores",
    "StoreConfigError",
    "create_databases",
]

POSTGRES_VARIABLE = "ZOPTAL_POSTGRES_URL"
PREFIX_VARIABLE = "ZOPTAL_DATABASE_PREFIX"
REDIS_VARIABLE = "ZOPTAL_REDIS_URL"
ENVIRONMENT_VARIABLES = (POSTGRES_VARIABLE, PREFIX_VARIABLE, REDIS_VARIABLE)
"""What ``ExternalStores.from_env`` reads (docs/operations.md documents each one)."""
DEFAULT_DATABASE_PREFIX = "zoptal_"
_SERVICE_DRIVER = "postgresql+asyncpg"
# Database names are interpolated into CREATE DATABASE (identifiers cannot be bound parameters),
# so the prefix is held to a plain identifier.
_PREFIX_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,40}")


class StoreConfigError(ValueError):
    """A ZOPTAL_POSTGRES_URL, ZOPTAL_DATABASE_PREFIX or ZOPTAL_REDIS_URL the launcher refuses."""


@dataclass(frozen=True)
class ExternalStores:
    postgres_url: str | None = None
    """The server, normalised to ``postgresql+asyncpg://`` with the path kept as given."""
    database_prefix: str = DEFAULT_DATABASE_PREFIX
    redis_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExternalStores:
        postgres = env.get(POSTGRES_VARIABLE) or None
        prefix = env.get(PREFIX_VARIABLE) or DEFAULT_DATABASE_PREFIX
        redis = env.get(REDIS_VARIABLE) or None
        if postgres is not None:
            scheme = urlsplit(postgres).scheme
            if scheme not in ("postgresql", "postgres", _SERVICE_DRIVER):
                raise StoreConfigError(
                    f"{POSTGRES_VARIABLE}: expected {_SERVICE_DRIVER}://..., got {scheme}://"
                )
            postgres = urlunsplit(urlsplit(postgres)._replace(scheme=_SERVICE_DRIVER))
        if not _PREFIX_PATTERN.fullmatch(prefix):
            raise StoreConfigError(
                f"{PREFIX_VARIABLE}: lower-case letters, digits and underscores, "
                f"not starting with a digit; got {prefix!r}"
            )
        if redis is not None and urlsplit(redis).scheme not in ("redis", "rediss"):
            raise StoreConfigError(f"{REDIS_VARIABLE}: expected redis://host:port/db")
        return cls(postgres_url=postgres, database_prefix=prefix, redis_url=redis)

    def database_name(self, service: str) -> str:
        return f"{self.database_prefix}{service}"

    def database_url(self, service: str) -> str | None:
        """The service's ``DATABASE_URL`` on PostgreSQL, or None for its SQLite default."""
        if self.postgres_url is None:
            return None
        parts = urlsplit(self.postgres_url)
        return urlunsplit(parts._replace(path="/" + self.database_name(service)))

    def variables(self, database_of: str | None) -> dict[str, str]:
        """Environment for a process using ``database_of``'s database (None: no database)."""
        variables: dict[str, str] = {}
        database_url = self.database_url(database_of) if database_of else None
        if database_url is not None:
            variables["DATABASE_URL"] = database_url
        if self.redis_url is not None:
            variables["REDIS_URL"] = self.redis_url
            variables["CELERY_BROKER_URL"] = self.redis_url
        return variables

    def describe(self, services: Iterable[str]) -> list[str]:
        """Banner lines naming the stores in use (passwords redacted)."""
        lines: list[str] = []
        if self.postgres_url is not None:
            names = ", ".join(self.database_name(name) for name in services)
            lines.append(f"PostgreSQL {redact_url(self.postgres_url)}: databases {names}")
        if self.redis_url is not None:
            lines.append(f"Redis {redact_url(self.redis_url)} (rate limits, real-time, Celery)")
        return lines


async def create_databases(stores: ExternalStores, services: Iterable[str]) -> list[str]:
    """Create each service's database that does not exist yet; returns the names created."""
    if stores.postgres_url is None:
        return []
    parts = urlsplit(stores.postgres_url)
    admin_path = parts.path if parts.path not in ("", "/") else "/postgres"
    admin_dsn = urlunsplit(parts._replace(scheme="postgresql", path=admin_path))
    connection = await asyncpg.connect(admin_dsn, timeout=10)
    created: list[str] = []
    try:
        for service in services:
            name = stores.database_name(service)
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
    finally:
        await connection.close()
    return created
