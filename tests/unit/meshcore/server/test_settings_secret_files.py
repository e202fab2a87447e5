"""``<VAR>_FILE``: secrets and URLs read from mounted files, refused when others can read them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import pytest
from meshcore.settings import Secret, ServiceSettings, SettingsError


@dataclass(frozen=True, kw_only=True)
class VaultSettings(ServiceSettings):
    service_name: ClassVar[str] = "vault"
    api_key: Secret | None = None


@pytest.fixture
def strong() -> str:
    return secrets.token_urlsafe(32)


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _production(tmp_path: Path, **overrides: str) -> dict[str, str]:
    url = f"postgresql+asyncpg://vault:{secrets.token_urlsafe(32)}@db/vault"
    env = {
        "ZOPTAL_ENV": "production",
        "DATABASE_URL_FILE": str(_write(tmp_path / "database-url", url + "\n")),
    }
    env.update(overrides)
    return env


def test_a_secret_is_read_from_its_file_without_one_trailing_newline(tmp_path, strong) -> None:
    """``echo value > file`` gives the value; a second newline or spaces would be kept."""
    path = _write(tmp_path / "api-key", strong + "\n")
    assert VaultSettings.from_env({"API_KEY_FILE": str(path)}).api_key == Secret(strong)
    _write(path, strong + "\r\n")
    assert VaultSettings.from_env({"API_KEY_FILE": str(path)}).api_key == Secret(strong)
    _write(path, strong + "\n\n")
    assert VaultSettings.from_env({"API_KEY_FILE": str(path)}).api_key == Secret(strong + "\n")


def test_a_url_is_read_whole_from_its_file(tmp_path) -> None:
    """DATABASE_URL_FILE holds the URL (the password is part of it); production accepts it."""
    settings = VaultSettings.from_env(_production(tmp_path))
    assert settings.database_url.startswith("postgresql+asyncpg://vault:")
    assert settings.is_production


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda p: {"API_KEY": "x", "API_KEY_FILE": str(_write(p / "k", "y"))}, "not both"),
        (lambda p: {"API_KEY_FILE": str(p / "missing")}, "API_KEY_FILE: cannot use"),
        (lambda p: {"API_KEY_FILE": str(_write(p / "k", "\n"))}, "is empty"),
        (lambda p: {"REDIS_URL_FILE": str(p)}, "REDIS_URL_FILE: cannot use"),
    ],
    ids=["both", "missing", "empty", "a-folder"],
)
def test_an_unusable_file_names_its_variable(tmp_path, setup, expected) -> None:
    """Both set, a missing, empty or unreadable file: the error names the variable."""
    with pytest.raises(SettingsError, match=expected):
        VaultSettings.from_env(setup(tmp_path))


def test_production_refuses_a_secret_file_others_can_read(tmp_path, strong) -> None:
    """0644 is refused naming the file; 0640 and 0440 (Kubernetes fsGroup volumes) are fine."""
    path = _write(tmp_path / "api-key", strong, mode=0o644)
    with pytest.raises(SettingsError, match=f"API_KEY_FILE: {path} is accessible by others"):
        VaultSettings.from_env(_production(tmp_path, API_KEY_FILE=str(path)))
    assert VaultSettings.from_env({"API_KEY_FILE": str(path)}).api_key == Secret(strong)
    for mode in (0o640, 0o440):
        path.chmod(mode)
        assert VaultSettings.from_env(_production(tmp_path, API_KEY_FILE=str(path))).api_key


def test_production_applies_the_secret_policy_to_file_contents(tmp_path) -> None:
    """A weak value is as weak in a file."""
    path = _write(tmp_path / "api-key", "change-me-change-me-change-me-change-me")
    with pytest.raises(SettingsError, match="API_KEY: refused in production"):
        VaultSettings.from_env(_production(tmp_path, API_KEY_FILE=str(path)))


def test_every_file_variant_is_listed_after_its_variable() -> None:
    """environment_variables() names what from_env reads, the _FILE variants included."""
    names = VaultSettings.environment_variables()
    for name in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "API_KEY"):
        assert names[names.index(name) + 1] == f"{name}_FILE"
    assert "GRPC_PORT_FILE" not in names


def test_the_database_password_comes_from_its_file(tmp_path) -> None:
    """A password-less DATABASE_URL gets the generated password (quoted) from its file."""
    password = secrets.token_urlsafe(32) + "/@:"
    path = _write(tmp_path / "db-password", password + "\n", 0o440)
    settings = VaultSettings.from_env(
        {
            "ZOPTAL_ENV": "production",
            "DATABASE_URL": "postgresql+asyncpg://zoptal@postgres:5432/vault",
            "DATABASE_PASSWORD_FILE": str(path),
        }
    )
    parts = urlsplit(settings.database_url)
    assert unquote(parts.password or "") == password
    assert (parts.hostname, parts.path) == ("postgres", "/vault")
    assert password not in repr(settings) + str(settings.safe_summary())


@pytest.mark.parametrize(
    ("url", "mode", "expected"),
    [
        ("postgresql+asyncpg://zoptal:inline@postgres/vault", 0o600, "already carries a password"),
        ("postgresql+asyncpg://zoptal@postgres/vault", 0o644, "accessible by others"),
    ],
)
def test_the_database_password_file_is_refused_when_it_cannot_be_trusted(
    tmp_path, url: str, mode: int, expected: str
) -> None:
    path = _write(tmp_path / "db-password", secrets.token_urlsafe(32), mode)
    env = {"ZOPTAL_ENV": "production", "DATABASE_URL": url, "DATABASE_PASSWORD_FILE": str(path)}
    with pytest.raises(SettingsError, match=f"DATABASE_PASSWORD_FILE: .*{expected}"):
        VaultSettings.from_env(env)
