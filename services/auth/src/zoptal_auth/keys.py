"""The signing keys: loaded from files in production, generated once per data folder otherwise.

Key files others can read are refused in production (``meshcore.private_files``); group access
stays allowed, since Kubernetes secret volumes with ``fsGroup`` are 0440.

Rotation: deploy a new key file next to the old ones. The newest key signs; every key is
published in the JWKS, so tokens signed by a retiring key keep verifying until they expire and
the old file can be removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from meshcore.jwt import SigningKey, StaticKeys
from meshcore.private_files import (
    open_private,
    others_access_problem,
    private_directory,
    write_atomic,
)
from meshcore.settings import SettingsError

from zoptal_auth.settings import AuthSettings

__all__ = ["KeyRing", "generate_key_file", "load_key_ring"]

logger = logging.getLogger(__name__)


class KeyRing:
    """The keys this service knows, oldest first; the last one signs."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one signing key")
        kids = [key.kid for key in keys]
        if len(set(kids)) != len(kids):
            raise ValueError("the same signing key is configured twice")
        self._keys = list(keys)
        # Current key first, as GetJwks promises; the document is fixed for the ring's life.
        self._jwks: dict[str, Any] = {"keys": [key.public_jwk() for key in reversed(self._keys)]}
        self._jwks_json = json.dumps(self._jwks, separators=(",", ":"), sort_keys=True)

    @property
    def current(self) -> SigningKey:
        return self._keys[-1]

    @property
    def algorithms(self) -> list[str]:
        return sorted({key.algorithm for key in self._keys})

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self._jwks_json)  # a copy nobody can change
        return document

    @property
    def jwks_json(self) -> str:
        return self._jwks_json

    def verification_keys(self) -> StaticKeys:
        return StaticKeys(self._jwks["keys"])


def load_key_ring(settings: AuthSettings) -> KeyRing:
    """Keys from JWT_SIGNING_KEY_FILES, else JWT_SIGNING_KEY_DIR, else the development folder."""
    production = settings.is_production
    if settings.jwt_signing_key_files:
        return KeyRing([_load(Path(path), production) for path in settings.jwt_signing_key_files])
    if settings.jwt_signing_key_dir is not None:
        files = sorted(settings.jwt_signing_key_dir.glob("*.pem"))
        if not files:
            raise FileNotFoundError(f"no *.pem signing keys in {settings.jwt_signing_key_dir}")
        return KeyRing([_load(path, production) for path in files])
    return _development_key_ring(settings.keys_dir, settings.jwt_signing_algorithm)


def generate_key_file(folder: Path, algorithm: Literal["ES256", "EdDSA"] = "ES256") -> Path:
    """Write a new private key as ``<unix time>-<kid prefix>.pem`` (mode 0600) into ``folder``.

    The timestamp prefix makes "sorts last" mean "newest", which is the rotation rule.
    """
    private_directory(folder)
    key = SigningKey.generate(algorithm)
    path = folder / f"{int(time.time()):010d}-{key.kid[:12]}.pem"
    write_atomic(path, key.private_pem())
    logger.info("generated signing key %s (%s) in %s", key.kid, algorithm, folder)
    return path


def _development_key_ring(folder: Path, algorithm: Literal["ES256", "EdDSA"]) -> KeyRing:
    private_directory(folder)
    # Several processes may start against one data folder; only one of them generates.
    with _locked(folder / ".lock"):
        files = sorted(folder.glob("*.pem"))
        if not files:
            files = [generate_key_file(folder, algorithm)]
    return KeyRing([_load(path, production=False) for path in files])


def _load(path: Path, production: bool) -> SigningKey:
    problem = others_access_problem(path)
    if problem is not None and production:
        raise SettingsError(f"JWT signing key: {problem}")
    if problem is not None:
        logger.warning("signing key: %s", problem)
    try:
        return SigningKey.from_pem(path.read_bytes())
    except ValueError as error:
        raise ValueError(f"{path}: not a usable ES256 or EdDSA private key ({error})") from None


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    descriptor = open_private(lock_path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
