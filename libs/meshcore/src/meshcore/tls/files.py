"""Certificate files on disk, re-read when they change: one watcher for servers and clients.

``meshcore.pki`` replaces files atomically (``os.replace``) in this order: ``ca.crt``, then
``tls.key``, then ``tls.crt``. A reader that sees the new certificate therefore reads a key at
least as new, because it reads the certificate *first* and the key after it. The one race left
is a second rotation between those two reads (an old certificate with a newer key): every load
checks that the key belongs to the certificate, and a load that fails keeps the previous files
in use and is tried again on the next look.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meshcore.settings import SettingsError

__all__ = ["CertificateBundle", "CertificateFilesError", "CertificateWatcher", "TlsFiles"]

logger = logging.getLogger(__name__)


class CertificateFilesError(SettingsError):
    """The certificate files cannot be used: unreadable, not PEM, or a key of another cert."""


@dataclass(frozen=True)
class TlsFiles:
    """Where a service's certificate, its key and the CA certificate are (any may be None:
    a TLS-only client has a CA and no certificate; None CA means the system's trust store)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> TlsFiles | None:
        """The settings' ``TLS_*_FILE`` trio, or None when they are unset (settings demand all
        three or none)."""
        files = cls(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
        return files if files.cert_file and files.key_file and files.ca_file else None

    def paths(self) -> tuple[Path | None, ...]:
        # The certificate before the key: the order in which readers must read them (above).
        return (self.cert_file, self.key_file, self.ca_file)


@dataclass(frozen=True)
class CertificateBundle:
    """The PEM bytes read from ``TlsFiles`` at one moment; ``serial`` of the leaf, if any."""

    certificate_chain: bytes | None
    private_key: bytes | None
    root_certificates: bytes | None
    serial: int | None


_Stamp = tuple[tuple[int, int, int] | None, ...]


class CertificateWatcher:
    """The current ``CertificateBundle`` of some ``TlsFiles``, reloaded when a file changes.

    A change is seen from ``stat`` alone (inode, mtime, size: an atomic replace always makes a
    new inode), so looking costs three system calls and no reads while nothing changed.
    """

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._stamp = _stamp(files)
        self.current = load_bundle(files)  # a bad first load is the operator's error: raise

    def reload_if_changed(self) -> CertificateBundle | None:
        """The new bundle if the files changed and load well; None otherwise (the previous
        bundle stays current, and a failed load is tried again next time)."""
        stamp = _stamp(self.files)  # before reading: a change while reading shows next time
        if stamp == self._stamp:
            return None
        try:
            bundle = load_bundle(self.files)
        except CertificateFilesError as error:
            logger.warning("certificate files changed but cannot be used yet: %s", error)
            return None
        self._stamp = stamp
        self.current = bundle
        logger.info("loaded re-issued certificate files (serial %s)", bundle.serial)
        return bundle


def load_bundle(files: TlsFiles) -> CertificateBundle:
    """Read ``files`` (certificate first, then key) and check that the key is the cert's."""
    chain, key, roots = (_read(path) for path in files.paths())
    serial = None
    if chain is not None:
        try:
            leaf = x509.load_pem_x509_certificate(chain)
        except ValueError:
            raise CertificateFilesError(f"{files.cert_file}: not a PEM certificate") from None
        serial = leaf.serial_number
        if key is not None and not _key_matches(leaf, key):
            raise CertificateFilesError(
                f"{files.key_file} is not the key of {files.cert_file} (a rotation in progress?)"
            )
    if roots is not None:
        try:
            x509.load_pem_x509_certificates(roots)
        except ValueError:
            raise CertificateFilesError(f"{files.ca_file}: not a PEM certificate") from None
    return CertificateBundle(chain, key, roots, serial)


def _key_matches(certificate: x509.Certificate, key_pem: bytes) -> bool:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)
    )


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise CertificateFilesError(f"{path}: {error.strerror or error}") from None


def _stamp(files: TlsFiles) -> _Stamp:
    stamps: list[tuple[int, int, int] | None] = []
    for path in files.paths():
        try:
            info = os.stat(path) if path is not None else None
        except OSError:
            info = None
        stamps.append(None if info is None else (info.st_ino, info.st_mtime_ns, info.st_size))
    return tuple(stamps)
