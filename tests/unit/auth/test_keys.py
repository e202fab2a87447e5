"""Signing keys: generated once in development, loaded from files in production, rotated."""

from __future__ import annotations

import stat
import time
from dataclasses import replace

import pytest
from meshcore.jwt import SigningKey
from meshcore.settings import SettingsError
from meshcore.testing import FakeClock
from zoptal_auth.keys import KeyRing, generate_key_file, load_key_ring, signs_from
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
    """Rotation: with two started files the last one signs, and the JWKS lists both, current
    first."""
    old = generate_key_file(tmp_path / "keys")
    new = tmp_path / "keys" / f"{int(time.time()) + 1:010d}-new.pem"
    generate_key_file(tmp_path / "other").rename(new)
    ring = load_key_ring(
        AuthSettings(data_dir=tmp_path, jwt_signing_key_files=(str(old), str(new)))
    )
    kids = [key["kid"] for key in ring.jwks()["keys"]]
    assert len(kids) == 2
    assert ring.current.kid == SigningKey.from_pem(old.read_bytes()).kid  # new starts in 1 s
    assert kids[0] == ring.current.kid
    by_dir = load_key_ring(AuthSettings(data_dir=tmp_path, jwt_signing_key_dir=tmp_path / "keys"))
    assert by_dir.current.kid == ring.current.kid
    assert [k.kid for k, _ in by_dir.pending] == [SigningKey.from_pem(new.read_bytes()).kid]


def test_a_published_key_signs_only_from_its_time_and_moves_first_in_the_jwks():
    """A key added ahead of its time is published at once and signs once its time comes; the
    JWKS (GetJwks and HTTP) then lists it first, and every key stays published."""
    clock = FakeClock(wall_start=1_000.0)
    old, new = SigningKey.generate(), SigningKey.generate()
    ring = KeyRing([old, new], starts=[0.0, 1_600.0], now=clock.time)
    assert ring.current.kid == old.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [old.kid, new.kid]
    assert [k.kid for k, _ in ring.pending] == [new.kid]
    clock.advance(599)
    assert ring.current.kid == old.kid
    clock.advance(1)
    assert ring.current.kid == new.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid, old.kid]
    assert not ring.pending


def test_start_times_come_from_file_names_and_files_without_one_sign_at_once(tmp_path):
    """`<unix time>-...pem` starts at that time; other names start at 0 and keep their order."""
    assert signs_from(tmp_path / "1700000000-abc.pem") == 1_700_000_000.0
    assert signs_from(tmp_path / "key.pem") == 0.0
    first, second = SigningKey.generate(), SigningKey.generate()
    assert KeyRing([first, second]).current.kid == second.kid


def test_generate_key_names_the_file_after_its_start(tmp_path):
    """publish_seconds puts the start time in the name; the default is now."""
    before = time.time()
    now = generate_key_file(tmp_path / "keys")
    later = generate_key_file(tmp_path / "keys", publish_seconds=1_800)
    assert before - 1 <= signs_from(now) <= time.time()
    assert signs_from(later) - signs_from(now) >= 1_799
    with pytest.raises(ValueError, match="publish_seconds"):
        generate_key_file(tmp_path / "keys", publish_seconds=-1)


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
