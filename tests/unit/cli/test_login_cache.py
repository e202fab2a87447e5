"""zoptal_cli.login_cache: the cached login."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from zoptal_cli.login_cache import CachedLogin, LoginCache, config_dir

LOGIN = CachedLogin("u1", "a@example.com", "access-secret", 2e9, "refresh-secret", 2e9)


def test_the_login_cache_is_private_and_never_shows_its_tokens(tmp_path: Path) -> None:
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "zoptal"
    cache = LoginCache(tmp_path / "zoptal")
    assert cache.load() is None
    cache.save(LOGIN)
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert cache.load() == LOGIN
    assert "secret" not in repr(cache.load())
    cache.path.write_text("{}")
    with pytest.raises(ValueError, match="zoptal login"):
        cache.load()
    assert cache.forget() is True
    assert cache.forget() is False
