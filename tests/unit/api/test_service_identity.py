"""zoptal.clients.service_identity: the credential file, and the clients that carry its token."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from meshcore.settings import ServiceSettings, SettingsError
from zoptal.clients.service_identity import ServiceCredential, identified_clients


@dataclass(frozen=True, kw_only=True)
class CallerSettings(ServiceSettings):
    service_name: ClassVar[str] = "caller"
    peer_defaults: ClassVar[Mapping[str, str]] = {"auth": "127.0.0.1:4000"}


def test_a_credential_is_written_private_and_atomically(tmp_path: Path) -> None:
    """0600 in a 0700 folder whatever the umask; a rewrite replaces the file in one step."""
    path = tmp_path / "identities" / "caller" / "credentials.json"
    previous = os.umask(0o022)
    try:
        ServiceCredential("caller", "sa_1", "first-secret").write(path)
        ServiceCredential("caller", "sa_1", "second-secret").write(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ServiceCredential.load(path).client_secret == "second-secret"
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporary left


def test_the_secret_never_shows_in_repr() -> None:
    assert "s3cr3t" not in repr(ServiceCredential("caller", "sa_1", "s3cr3t"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "not JSON"),
        ('{"service": "caller", "client_id": "sa_1"}', "expected an object with"),
        ('{"service": "caller", "client_id": "", "client_secret": "x"}', "expected an object"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_a_bad_credential_file_is_named(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=expected) as raised:
        ServiceCredential.load(path)
    assert str(path) in str(raised.value)
    with pytest.raises(ValueError, match="cannot read"):
        ServiceCredential.load(tmp_path / "missing.json")


def test_a_service_that_calls_peers_refuses_to_start_without_a_credential() -> None:
    """Production has no development default: building the peer clients stops the start."""
    settings = CallerSettings(
        env="production", database_url="postgresql+asyncpg://caller@db/caller"
    )
    assert settings.service_credentials_file is None
    with pytest.raises(SettingsError, match="SERVICE_CREDENTIALS_FILE"):
        identified_clients(settings)
