"""The login ``zoptal login`` keeps: ``<config dir>/zoptal/token.json``, 0600 in a 0700 folder.

The config dir is ``$ZOPTAL_CONFIG_DIR`` when set, else ``$XDG_CONFIG_HOME/zoptal``, else
``~/.config/zoptal`` (the XDG base directory rule; one path on every Unix, no dependency for it).
The file is written atomically (``meshcore.private_files``), so a crash never leaves half of it,
and it never exists with wider access. Its tokens are never printed: ``repr`` leaves them out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from meshcore.private_files import open_private, private_directory, write_atomic

__all__ = ["CachedLogin", "LoginCache", "config_dir"]

CACHE_FILE_NAME = "token.json"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("ZOPTAL_CONFIG_DIR"):
        return Path(env["ZOPTAL_CONFIG_DIR"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "zoptal"


@dataclass(frozen=True)
class CachedLogin:
    user_id: str
    email: str
    access_token: str
    access_expires_at: float
    """Unix time."""
    refresh_token: str
    refresh_expires_at: float

    def __repr__(self) -> str:
        return f"CachedLogin(user_id={self.user_id!r}, email={self.email!r})"

    @classmethod
    def from_document(cls, document: Any) -> CachedLogin:
        fields = cls.__dataclass_fields__
        if not isinstance(document, dict) or set(document) != set(fields):
            raise ValueError(f"expected an object with {', '.join(fields)}")
        return cls(
            user_id=str(document["user_id"]),
            email=str(document["email"]),
            access_token=str(document["access_token"]),
            access_expires_at=float(document["access_expires_at"]),
            refresh_token=str(document["refresh_token"]),
            refresh_expires_at=float(document["refresh_expires_at"]),
        )


class LoginCache:
    """Load, save and forget the cached login in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / CACHE_FILE_NAME

    def load(self) -> CachedLogin | None:
        """The cached login, or None when there is none; ``ValueError`` for a damaged file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return CachedLogin.from_document(json.loads(text))
        except ValueError as error:
            raise ValueError(f"{self.path}: {error}; run `zoptal login` again") from None

    def save(self, login: CachedLogin) -> None:
        private_directory(self.folder)
        write_atomic(self.path, json.dumps(asdict(login), indent=2).encode() + b"\n")

    def forget(self) -> bool:
        """Delete the cached login; False when there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock while refreshing: refresh tokens are single-use, and one spent
        twice (two commands refreshing at once) revokes the whole login."""
        private_directory(self.folder)
        descriptor = open_private(self.folder / "token.lock", os.O_RDWR)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock
