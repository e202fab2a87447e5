"""The signing keys: loaded from files in production, generated once per data folder otherwise.

Key files others can read are refused in production (``meshcore.private_files``); group access
stays allowed, since Kubernetes secret volumes with ``fsGroup`` are 0440.

Rotation without a refusal window: a key file is named ``<unix time>-<kid prefix>.pem`` and the
time is when it starts signing. Every key is published in the JWKS at once; the key that signs is
the newest whose time has come. ``generate-key`` names a new key ``DEFAULT_PUBLISH_SECONDS`` in
the future, so every verifier has fetched it (meshcore's ``RemoteJwks`` refreshes every 300 s, the
JWKS response may be cached for its ``max-age``, istiod refetches a ``jwksUri`` every 20 min)
before the first token it signs exists; each Auth replica switches at that time on its own clock,
no restart needed. Tokens signed by a retiring key keep verifying (it stays published) until they
expire and its file can be removed. A file name without a leading time signs from the start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
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

__all__ = [
    "DEFAULT_PUBLISH_SECONDS",
    "KeyRing",
    "generate_key_file",
    "load_key_ring",
    "signs_from",
]

logger = logging.getLogger(__name__)

DEFAULT_PUBLISH_SECONDS = 1800.0
"""How long a rotated-in key is only published before it signs: longer than every verifier's
cache (istiod's 20 min ``jwksUri`` refresh is the longest) plus the time to roll Auth out."""

_SIGNS_FROM = re.compile(r"^(\d+)-")


def signs_from(path: Path) -> float:
    """When the key in ``path`` starts signing: the Unix time its name starts with, else 0."""
    match = _SIGNS_FROM.match(path.name)
    return float(match.group(1)) if match else 0.0


class KeyRing:
    """The keys this service knows, oldest first, each with the time it starts signing.

    Every key is published; the one that signs is the last whose time has come (``now``), so a
    key added ahead of its time is known to every verifier before any token carries its kid.
    """

    def __init__(
        self,
        keys: Sequence[SigningKey],
        *,
        starts: Sequence[float] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one signing key")
        kids = [key.kid for key in keys]
        if len(set(kids)) != len(kids):
            raise ValueError("the same signing key is configured twice")
        starts = [0.0] * len(keys) if starts is None else list(starts)
        if len(starts) != len(keys):
            raise ValueError("one start time per key")
        # Stable: keys starting together keep their configured order (the last one signs).
        order = sorted(range(len(keys)), key=lambda index: starts[index])
        self._keys = [keys[index] for index in order]
        self._starts = [starts[index] for index in order]
        self._now = now
        self._public = {key.kid: key.public_jwk() for key in self._keys}
        self._documents: dict[str, str] = {}

    @property
    def current(self) -> SigningKey:
        """The key that signs now: the newest started one (the earliest if none has started)."""
        now = self._now()
        started = [key for key, start in zip(self._keys, self._starts, strict=True) if start <= now]
        return started[-1] if started else self._keys[0]

    @property
    def pending(self) -> list[tuple[SigningKey, float]]:
        """Keys published but not signing yet, with the time each starts."""
        now = self._now()
        return [(k, s) for k, s in zip(self._keys, self._starts, strict=True) if s > now]

    @property
    def algorithms(self) -> list[str]:
        return sorted({key.algorithm for key in self._keys})

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.jwks_json)  # a copy nobody can change
        return document

    @property
    def jwks_json(self) -> str:
        """Every key, the current one first (as GetJwks promises), then newest to oldest."""
        current = self.current.kid
        document = self._documents.get(current)
        if document is None:
            ordered = [current] + [k.kid for k in reversed(self._keys) if k.kid != current]
            document = json.dumps(
                {"keys": [self._public[kid] for kid in ordered]},
                separators=(",", ":"),
                sort_keys=True,
            )
            self._documents[current] = document
        return document

    def verification_keys(self) -> StaticKeys:
        return StaticKeys(list(self._public.values()))


def load_key_ring(settings: AuthSettings) -> KeyRing:
    """Keys from JWT_SIGNING_KEY_FILES, else JWT_SIGNING_KEY_DIR, else the development folder."""
    production = settings.is_production
    if settings.jwt_signing_key_files:
        files = [Path(path) for path in settings.jwt_signing_key_files]
    elif settings.jwt_signing_key_dir is not None:
        files = sorted(settings.jwt_signing_key_dir.glob("*.pem"))
        if not files:
            raise FileNotFoundError(f"no *.pem signing keys in {settings.jwt_signing_key_dir}")
    else:
        return _development_key_ring(settings.keys_dir, settings.jwt_signing_algorithm)
    return _ring([_load(path, production) for path in files], files)


def generate_key_file(
    folder: Path, algorithm: Literal["ES256", "EdDSA"] = "ES256", *, publish_seconds: float = 0.0
) -> Path:
    """Write a new private key as ``<unix time>-<kid prefix>.pem`` (mode 0600) into ``folder``.

    The time is ``publish_seconds`` from now: until then Auth only publishes the key (see the
    module's docstring); the prefix also makes "sorts last" mean "signs last".
    """
    if publish_seconds < 0:
        raise ValueError("publish_seconds must be >= 0")
    private_directory(folder)
    key = SigningKey.generate(algorithm)
    path = folder / f"{int(time.time() + publish_seconds):010d}-{key.kid[:12]}.pem"
    write_atomic(path, key.private_pem())
    logger.info("generated signing key %s (%s) in %s", key.kid, algorithm, folder)
    return path


def _ring(keys: list[SigningKey], files: Sequence[Path]) -> KeyRing:
    ring = KeyRing(keys, starts=[signs_from(path) for path in files])
    for key, start in ring.pending:
        logger.info("signing key %s is published; it signs from %s", key.kid, _utc(start))
    return ring


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _development_key_ring(folder: Path, algorithm: Literal["ES256", "EdDSA"]) -> KeyRing:
    private_directory(folder)
    # Several processes may start against one data folder; only one of them generates.
    with _locked(folder / ".lock"):
        files = sorted(folder.glob("*.pem"))
        if not files:
            files = [generate_key_file(folder, algorithm)]
    return _ring([_load(path, production=False) for path in files], files)


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
