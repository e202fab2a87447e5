"""Signing keys: generated once in development, loaded from files in production, rotated."""

from __future__ import annotations

import stat
from dataclasses import replace

import pytest
from meshcore.settings import SettingsError
from zoptal_auth.keys import generate_key_file, load_key_ring
from zoptal_auth.settings import AuthSettings


def test_development_key_is_generated_once_with_private_file_mode(settings):
    """The first start writes one key (0600, folder 0700); later starts reuse it."""
    first = load_key_ring(settings)
    files = list(settings.keys_dir.glob("*.pem"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.keys_dir.stat().st_mode) == 0o700
    assert load_key_ring(settings).current.kid == first.current.kid


def test_newest_key_signs_and_every_key_is_published(tmp_path):
    """Rotation: with two files the last one signs, and the JWKS lists both, current first."""
    old = generate_key_file(tmp_path / "keys")
    new = tmp_path / "keys" / "9999999999-new.pem"
    generate_key_file(tmp_path / "other").rename(new)
    ring = load_key_ring(
        AuthSettings(data_dir=tmp_path, jwt_signing_key_files=(str(old), str(new)))
    )
    kids = [key["kid"] for key in ring.jwks()["keys"]]
    assert len(kids) == 2
    assert kids[0] == ring.current.kid
    by_dir = load_key_ring(AuthSettings(data_dir=tmp_path, jwt_signing_key_dir=tmp_path / "keys"))
    assert by_dir.current.kid == ring.current.kid


def test_published_keys_are_public_only(settings):
    """The JWKS never carries private material (no 'd')."""
    ring = load_key_ring(settings)
    assert all("d" not in key for key in ring.jwks()["keys"])
    assert '"d"' not in ring.jwks_json


def test_eddsa_can_be_chosen_for_generated_keys(tmp_path):
    """JWT_SIGNING_ALGORITHM=EdDSA generates an Ed25519 key."""
    ring = load_key_ring(AuthSettings(data_dir=tmp_path, jwt_signing_algorithm="EdDSA"))
    assert ring.current.algorithm == "EdDSA"
    assert ring.jwks()["keys"][0]["crv"] == "Ed25519"


def test_a_file_that_is_not_a_key_is_refused_naming_it(tmp_path):
    """A wrong file fails the start with its path in the message."""
    bogus = tmp_path / "key.pem"
    bogus.write_text("not a key")
    with pytest.raises(ValueError, match=r"key\.pem"):
        load_key_ring(AuthSettings(data_dir=tmp_path, jwt_signing_key_files=(str(bogus),)))


def test_production_refuses_to_start_without_key_files(tmp_path):
    """Production must load keys from files: generated per-pod keys would disagree."""
    production = {
        "env": "production",
        "database_url": "postgresql+asyncpg://auth@db/auth",
    }
    with pytest.raises(SettingsError, match="JWT_SIGNING_KEY_FILES"):
        AuthSettings(data_dir=tmp_path, **production)
    key = generate_key_file(tmp_path / "keys")
    assert AuthSettings(data_dir=tmp_path, jwt_signing_key_files=(str(key),), **production)


def test_settings_read_key_files_and_ports_from_the_environment(tmp_path):
    """JWT_SIGNING_KEY_FILES is a comma-separated list; AUTH_HTTP_PORT moves the JWKS port."""
    settings = AuthSettings.from_env(
        {"JWT_SIGNING_KEY_FILES": "/a.pem, /b.pem", "AUTH_HTTP_PORT": "18080"}
    )
    assert settings.jwt_signing_key_files == ("/a.pem", "/b.pem")
    assert settings.auth_http_port == 18080
    assert replace(settings, auth_http_port=0).auth_http_port == 0


def test_production_refuses_a_key_file_others_can_read(tmp_path, caplog):
    """0644 stops a production start naming the file; group access (0640, 0440) is allowed."""
    key = generate_key_file(tmp_path / "keys")
    production = AuthSettings(
        env="production",
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://auth@db/auth",
        jwt_signing_key_files=(str(key),),
    )
    key.chmod(0o644)
    with pytest.raises(SettingsError, match=f"JWT signing key: {key} is accessible by others"):
        load_key_ring(production)
    with pytest.raises(SettingsError, match="accessible by others"):
        load_key_ring(replace(production, jwt_signing_key_files=(), jwt_signing_key_dir=key.parent))
    development = AuthSettings(data_dir=tmp_path, jwt_signing_key_files=(str(key),))
    assert load_key_ring(development)  # development: a warning only
    assert "accessible by others" in caplog.text
    for mode in (0o640, 0o440):
        key.chmod(mode)
        assert load_key_ring(production).current
