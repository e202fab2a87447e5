"""ServiceSettings: typed parsing from the environment, clear errors, production refusal."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from meshcore.secret_policy import DEV_JWT_SECRET
from meshcore.settings import (
    Secret,
    ServiceSettings,
    SettingsError,
    env_field,
    parse_addresses,
    redact_url,
)

STRONG = "s" * 40
PG_URL = "postgresql+asyncpg://app:hunter2-password@db:5432/orders"
# Generated per run: a literal strong value would be a committed secret that production accepts
# (tests/unit/test_repository_secrets.py refuses those).
PROD_PG_URL = f"postgresql+asyncpg://app:{secrets.token_urlsafe(32)}@db:5432/orders"


@dataclass(frozen=True, kw_only=True)
class OrdersSettings(ServiceSettings):
    service_name: ClassVar[str] = "orders"
    peer_defaults: ClassVar[Mapping[str, str]] = {"billing": "127.0.0.1:4003"}

    grpc_port: int = 4100
    metrics_port: int = 9500
    webhook_port: int = env_field(8090, env="ORDERS_WEBHOOK_PORT")
    retries: int = 3
    verbose: bool = False
    algorithm: Literal["ES256", "EdDSA"] = "ES256"
    api_key: Secret | None = None


def production(**overrides: str) -> dict[str, str]:
    env = {
        "ZOPTAL_ENV": "production",
        "SERVICE_CREDENTIALS_FILE": "/run/secrets/orders/credentials.json",
        "DATABASE_URL": PROD_PG_URL,
    }
    env.update(overrides)
    return env


def test_defaults_follow_the_conventions() -> None:
    """With an empty environment a service binds loopback on its own port with SQLite in ./data."""
    settings = OrdersSettings.from_env({})
    assert settings.env == "development"
    assert settings.grpc_address == "127.0.0.1:4100"
    assert settings.metrics_port == 9500
    assert settings.database_url == f"sqlite+aiosqlite:///{Path('data') / 'orders.db'}"
    assert settings.redis_url is None
    assert settings.mesh_mode == "standalone"
    assert settings.rate_limit_fail_mode == "open"
    # A service that calls peers has its own credential, generated per data folder.
    assert settings.service_credentials_file == Path("data/identities/orders/credentials.json")
    assert settings.peer("billing") == ("127.0.0.1:4003",)


def test_every_documented_variable_is_read() -> None:
    """Each variable of docs/conventions.md lands in its typed field."""
    settings = OrdersSettings.from_env(
        {
            "GRPC_HOST": "0.0.0.0",
            "GRPC_PORT": "5000",
            "METRICS_PORT": "0",
            "DATA_DIR": "/var/lib/orders",
            "REDIS_URL": "redis://redis:6379/0",
            "LOG_LEVEL": "debug",
            "JWT_ISSUER": "issuer-x",
            "JWT_AUDIENCE": "aud-x",
            "JWT_SECRET": "jwt-secret",
            "SERVICE_CREDENTIALS_FILE": "/run/orders/credentials.json",
            "AUTH_JWKS_URL": "http://auth:8080/.well-known/jwks.json",
            "MESH_MODE": "istio",
            "BILLING_ADDR": "billing-0:4003, billing-1:4003",
            "SHUTDOWN_GRACE_SECONDS": "25",
            "SHUTDOWN_DRAIN_SECONDS": "3.5",
            "HEALTH_CHECK_INTERVAL_SECONDS": "2",
            "RATE_LIMIT_WINDOW_MS": "1000",
            "RATE_LIMIT_MAX_REQUESTS": "7",
            "RATE_LIMIT_FAIL_MODE": "closed",
            "ORDERS_WEBHOOK_PORT": "8099",
            "RETRIES": "5",
            "VERBOSE": "yes",
            "ALGORITHM": "eddsa",
            "GRPC_MAX_RECEIVE_MESSAGE_BYTES": "8388608",
        }
    )
    assert settings.grpc_max_receive_message_bytes == 8 * 1024 * 1024
    assert settings.grpc_address == "0.0.0.0:5000"
    assert settings.metrics_port == 0
    assert settings.data_dir == Path("/var/lib/orders")
    assert settings.database_url == "sqlite+aiosqlite:////var/lib/orders/orders.db"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.log_level == "DEBUG"
    assert (settings.jwt_issuer, settings.jwt_audience) == ("issuer-x", "aud-x")
    assert settings.jwt_secret == Secret("jwt-secret")
    assert settings.service_credentials_file == Path("/run/orders/credentials.json")
    assert settings.auth_jwks_url == "http://auth:8080/.well-known/jwks.json"
    assert settings.mesh_mode == "istio"
    assert settings.peer("billing") == ("billing-0:4003", "billing-1:4003")
    assert settings.shutdown_grace_seconds == 25.0
    assert settings.shutdown_drain_seconds == 3.5
    assert settings.health_check_interval_seconds == 2.0
    assert settings.rate_limit_window_ms == 1000
    assert settings.rate_limit_max_requests == 7
    assert settings.rate_limit_fail_mode == "closed"
    assert (settings.webhook_port, settings.retries, settings.verbose) == (8099, 5, True)
    assert settings.algorithm == "EdDSA"


def test_empty_variables_count_as_unset() -> None:
    """``REDIS_URL=`` (as compose files write it) means no Redis, not an empty URL."""
    settings = OrdersSettings.from_env({"REDIS_URL": "", "GRPC_PORT": "  "})
    assert settings.redis_url is None
    assert settings.grpc_port == 4100


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GRPC_PORT", "http", "GRPC_PORT: expected an integer"),
        ("GRPC_PORT", "70000", "GRPC_PORT: expected 0..65535"),
        ("ORDERS_WEBHOOK_PORT", "-1", "ORDERS_WEBHOOK_PORT: expected 0..65535"),
        ("ZOPTAL_ENV", "prod", "ZOPTAL_ENV: expected one of development, production"),
        ("MESH_MODE", "linkerd", "MESH_MODE: expected one of standalone, istio"),
        ("RATE_LIMIT_FAIL_MODE", "maybe", "RATE_LIMIT_FAIL_MODE: expected one of open, closed"),
        ("RATE_LIMIT_MAX_REQUESTS", "0", "RATE_LIMIT_MAX_REQUESTS: must be positive"),
        ("SHUTDOWN_GRACE_SECONDS", "soon", "SHUTDOWN_GRACE_SECONDS: expected a number"),
        ("SHUTDOWN_DRAIN_SECONDS", "-1", "SHUTDOWN_DRAIN_SECONDS: must be >= 0"),
        ("VERBOSE", "perhaps", "VERBOSE: expected true or false"),
        ("DATABASE_URL", "mysql://db/x", "DATABASE_URL: expected a sqlite+aiosqlite://"),
        ("BILLING_ADDR", "billing", "BILLING_ADDR: expected host:port"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: expected one of DEBUG"),
        ("GRPC_MAX_RECEIVE_MESSAGE_BYTES", "0", "GRPC_MAX_RECEIVE_MESSAGE_BYTES: expected 1.."),
        ("GRPC_MAX_RECEIVE_MESSAGE_BYTES", "-1", "GRPC_MAX_RECEIVE_MESSAGE_BYTES: expected 1.."),
        ("GRPC_MAX_RECEIVE_MESSAGE_BYTES", "67108865", "expected 1..67108864"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, expected: str) -> None:
    """Every parsing or range error says which variable to fix."""
    with pytest.raises(SettingsError, match=re.escape(expected)):
        OrdersSettings.from_env({variable: value})


def test_all_bad_variables_are_reported_at_once() -> None:
    """One start attempt lists every problem, not just the first."""
    with pytest.raises(SettingsError) as caught:
        OrdersSettings.from_env({"GRPC_PORT": "x", "RETRIES": "y"})
    assert "GRPC_PORT" in str(caught.value)
    assert "RETRIES" in str(caught.value)


def test_a_bad_secret_value_is_not_echoed() -> None:
    """A parse error on a secret field never repeats the secret."""

    @dataclass(frozen=True, kw_only=True)
    class WithIntSecret(ServiceSettings):
        pin: Secret | None = None
        pin_count: int = 0

    with pytest.raises(SettingsError) as caught:
        WithIntSecret.from_env({"PIN_COUNT": "not-a-number", "PIN": "1234"})
    assert "1234" not in str(caught.value)


def test_repr_and_summary_hide_secrets_and_url_passwords() -> None:
    """Logging the settings object never leaks a secret or a database password."""
    settings = OrdersSettings.from_env(
        {
            "JWT_SECRET": "jwt-top-secret",
            "API_KEY": "api-top-secret",
            "DATABASE_URL": PG_URL,
            "REDIS_URL": "redis://:redis-pass@redis:6379/0",
        }
    )
    shown = repr(settings) + str(settings.safe_summary()) + str(settings.jwt_secret)
    for secret in ("jwt-top-secret", "api-top-secret", "hunter2", "redis-pass"):
        assert secret not in shown
    assert settings.safe_summary()["database_url"] == "postgresql+asyncpg://app:***@db:5432/orders"


def test_settings_are_immutable_and_hashable() -> None:
    """One settings object per service, frozen after it is read (usable as a cache key)."""
    settings = OrdersSettings.from_env({"BILLING_ADDR": "b:1"})
    with pytest.raises(FrozenInstanceError):
        settings.grpc_port = 1  # type: ignore[misc]
    assert hash(settings) == hash(OrdersSettings.from_env({"BILLING_ADDR": "b:1"}))
    assert settings == OrdersSettings.from_env({"BILLING_ADDR": "b:1"})
    assert settings != OrdersSettings.from_env({"BILLING_ADDR": "b:2"})


def test_production_with_real_secrets_and_postgres_starts() -> None:
    """Production accepts strong secrets, PostgreSQL, and no Redis."""
    settings = OrdersSettings.from_env(
        production(JWT_SECRET=secrets.token_urlsafe(32), API_KEY=secrets.token_hex(32))
    )
    assert settings.is_production
    assert settings.redis_url is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"JWT_SECRET": "changeme"}, "JWT_SECRET: refused in production, shorter than 32"),
        ({"JWT_SECRET": "j" * 31}, "JWT_SECRET: refused in production, shorter than 32"),
        ({"JWT_SECRET": DEV_JWT_SECRET}, "JWT_SECRET: refused in production, a sample value"),
        ({"JWT_SECRET": "j" * 40}, "JWT_SECRET: refused in production, too little left"),
        ({"API_KEY": "Xk9$" * 10}, "API_KEY: refused in production, low entropy"),
        (
            {"DATABASE_URL": PG_URL},
            "DATABASE_URL: refused in production, its password is shorter than 32",
        ),
        (
            {"REDIS_URL": "redis://:example-redis-password-change-me-please@redis:6379/0"},
            "REDIS_URL: refused in production, its password is too little left",
        ),
        ({"DATABASE_URL": ""}, "DATABASE_URL: SQLite is refused in production"),
        ({"DATABASE_URL": "sqlite+aiosqlite:///x.db"}, "DATABASE_URL: SQLite is refused"),
    ],
)
def test_production_refuses_development_settings(overrides: dict[str, str], expected: str) -> None:
    """A production setting refuses to start with a development secret or SQLite."""
    with pytest.raises(SettingsError, match=expected):
        OrdersSettings.from_env(production(**overrides))


def test_production_refusal_also_applies_to_direct_construction() -> None:
    """Building settings in code cannot bypass the production checks."""
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        OrdersSettings(env="production", database_url="sqlite+aiosqlite:///orders.db")


def test_an_ipv6_host_is_bracketed_in_the_bind_address() -> None:
    """GRPC_HOST=:: binds every IPv6 (and, on Linux, IPv4) address."""
    assert OrdersSettings.from_env({"GRPC_HOST": "::"}).grpc_address == "[::]:4100"


def test_unknown_peer_names_its_variable() -> None:
    """Asking for a peer nobody configured says which variable to set."""
    with pytest.raises(KeyError, match="SEARCH_ADDR"):
        OrdersSettings.from_env({}).peer("search")


def test_addresses_and_urls_helpers() -> None:
    """Address lists are validated; URL redaction keeps everything but the password."""
    assert parse_addresses("a:1,b:2") == ("a:1", "b:2")
    with pytest.raises(ValueError, match="host:port"):
        parse_addresses("a:port")
    assert redact_url("redis://redis:6379/0") == "redis://redis:6379/0"
    assert redact_url("postgresql://u:p@h/d") == "postgresql://u:***@h/d"


def _certificate_files(tmp_path: Path) -> dict[str, str]:
    names = {"TLS_CERT_FILE": "tls.crt", "TLS_KEY_FILE": "tls.key", "TLS_CA_FILE": "ca.crt"}
    for name in names.values():
        (tmp_path / name).write_text("pem")
    return {variable: str(tmp_path / name) for variable, name in names.items()}


def test_tls_files_are_all_three_or_none(tmp_path: Path) -> None:
    files = _certificate_files(tmp_path)
    settings = OrdersSettings.from_env({**files, "MTLS_PORT": "4200"})
    assert settings.tls_cert_file == tmp_path / "tls.crt"
    assert settings.mtls_port == 4200
    assert settings.tls_trust_domain == "zoptal.local"
    del files["TLS_CA_FILE"]
    with pytest.raises(SettingsError, match=r"set all three or none \(TLS_CA_FILE unset\)"):
        OrdersSettings.from_env(files)


def test_a_missing_tls_file_is_refused_by_its_variable(tmp_path: Path) -> None:
    files = _certificate_files(tmp_path)
    files["TLS_KEY_FILE"] = str(tmp_path / "absent.key")
    with pytest.raises(SettingsError, match=r"TLS_KEY_FILE: no file at .*absent\.key"):
        OrdersSettings.from_env(files)


def test_mtls_port_needs_the_tls_files_and_its_own_port(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MTLS_PORT: needs TLS_CERT_FILE"):
        OrdersSettings.from_env({"MTLS_PORT": "4200"})
    files = _certificate_files(tmp_path)
    with pytest.raises(SettingsError, match="MTLS_PORT: must differ from GRPC_PORT"):
        OrdersSettings.from_env({**files, "MTLS_PORT": "4100"})
