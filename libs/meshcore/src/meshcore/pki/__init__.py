"""``meshcore.pki``: certificates for mutual TLS between meshcore services (outside Istio).

    python -m meshcore.pki ensure-ca --dir CA_DIR
    python -m meshcore.pki issue  --ca-dir CA_DIR --out OUT_DIR --service NAME [--dns HOST ...]
                                  [--ip ADDR ...] [--trust-domain D] [--days N]
    python -m meshcore.pki ensure ...   (as issue, only when needed: see ``ensure``)

A service folder then holds ``tls.crt``, ``tls.key`` (0600) and ``ca.crt``: point
``TLS_CERT_FILE``, ``TLS_KEY_FILE`` and ``TLS_CA_FILE`` at them. Running ``ensure`` again (a
cron job, an init container) renews a certificate in the last third of its life; servers and
clients pick the new files up without a restart (``meshcore.tls``).

EC P-256 keys; leaves name their service by URI SAN ``spiffe://<trust domain>/service/<name>``
and live 30 days by default, the CA 10 years.

``ensure_ca`` makes (once) ``ca.crt`` and ``ca.key``; ``issue`` writes a service's ``tls.key``,
``tls.crt`` and ``ca.crt`` into a folder; ``ensure`` issues only when the folder's certificate
is missing, unusable, issued by another CA, for other names, or in the last third of its life
(so a renewal always overlaps the old certificate by days, and rotation is never a race).

Order of the writes in a service folder: ``ca.crt`` first (trust what will be presented before
presenting it), then ``tls.key``, then ``tls.crt``. Readers (``meshcore.tls.files``) reload when
``tls.crt`` changes and read the certificate before the key, so the key they read is at least as
new as the certificate; they also check that the two belong together.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.private_files import private_directory, write_atomic
from meshcore.timeutil import utc_now
from meshcore.tls.identity import spiffe_id

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "DEFAULT_CA_DAYS",
    "DEFAULT_LEAF_DAYS",
    "TLS_CERT",
    "TLS_KEY",
    "CertificateAuthority",
    "CertificateRequest",
    "PkiError",
    "ensure",
    "ensure_ca",
    "issue",
    "renewal_reason",
]

CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"
PRIVATE_KEY_MODE = 0o600
CERTIFICATE_MODE = 0o644  # certificates are public
DEFAULT_LEAF_DAYS = 30
DEFAULT_CA_DAYS = 3650
# Certificates start a little in the past, so hosts whose clocks lag still accept them.
_BACKDATE = dt.timedelta(minutes=5)


class PkiError(ValueError):
    """Bad input or unusable files; the message says which."""


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        try:
            certificate = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key(
                (directory / CA_KEY).read_bytes(), password=None
            )
        except (OSError, ValueError) as error:
            raise PkiError(f"no usable CA in {directory} ({error}); run ensure-ca") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{directory / CA_KEY}: expected an EC private key")
        return cls(certificate, key)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def signed(self, certificate: x509.Certificate) -> bool:
        """Whether this CA issued ``certificate`` (by name and by signature)."""
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


@dataclass(frozen=True)
class CertificateRequest:
    """What a service's certificate says: its SPIFFE ID and the names it is reached by.

    Every certificate carries DNS SANs ``<service>`` (compose and Kubernetes short names) and
    ``localhost``, and IP SAN ``127.0.0.1`` (the embedded launcher), plus ``dns_names`` and
    ``ip_addresses``: grpc checks the target's host against them.
    """

    service: str
    dns_names: Sequence[str] = ()
    ip_addresses: Sequence[str] = ()
    trust_domain: str = "zoptal.local"
    days: int = DEFAULT_LEAF_DAYS

    def subject_alternative_names(self) -> x509.SubjectAlternativeName:
        """The SAN extension (checks every name: PkiError for a bad one)."""
        try:
            uri = spiffe_id(self.trust_domain, self.service)
            ips = [ipaddress.ip_address(ip) for ip in ("127.0.0.1", *self.ip_addresses)]
        except ValueError as error:
            raise PkiError(str(error)) from None
        dns = [self.service, "localhost", *self.dns_names]
        if any(not name or " " in name or "/" in name for name in dns):
            raise PkiError(f"bad DNS name among {list(self.dns_names)}")
        if self.days <= 0:
            raise PkiError(f"days must be positive, got {self.days}")
        return x509.SubjectAlternativeName(
            [
                x509.UniformResourceIdentifier(uri),
                *(x509.DNSName(name) for name in dict.fromkeys(dns)),
                *(x509.IPAddress(ip) for ip in dict.fromkeys(ips)),
            ]
        )


def ensure_ca(
    directory: Path, *, days: int = DEFAULT_CA_DAYS, clock: Clock = SYSTEM_CLOCK
) -> tuple[CertificateAuthority, bool]:
    """The CA in ``directory``, made first if ``ca.crt`` is missing; (CA, whether it was made).

    An existing CA is never replaced: every certificate it signed would stop being trusted.
    """
    if (directory / CA_CERT).exists():
        return CertificateAuthority.load(directory), False
    if days <= 0:
        raise PkiError(f"days must be positive, got {days}")
    # An existing folder keeps its mode: it may be a mounted volume whose owner decides.
    private_directory(directory, restrict_existing=False)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Zoptal mesh CA")])
    now = utc_now(clock)
    certificate = (
        _builder(name, name, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    # The key before the certificate: ca.crt's presence is what says "a CA is here".
    write_atomic(directory / CA_KEY, _key_pem(key), PRIVATE_KEY_MODE)
    write_atomic(
        directory / CA_CERT, certificate.public_bytes(serialization.Encoding.PEM), CERTIFICATE_MODE
    )
    return CertificateAuthority(certificate, key), True


def issue(
    ca: CertificateAuthority,
    out_dir: Path,
    request: CertificateRequest,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> x509.Certificate:
    """Write a new key and certificate for ``request`` into ``out_dir`` (see the module doc)."""
    sans = request.subject_alternative_names()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, request.service)])
    ca_key_id = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    certificate = (
        _builder(subject, ca.certificate.subject, key.public_key(), utc_now(clock), request.days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(sans, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id.value), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    private_directory(out_dir, restrict_existing=False)
    write_atomic(out_dir / CA_CERT, ca.pem(), CERTIFICATE_MODE)
    write_atomic(out_dir / TLS_KEY, _key_pem(key), PRIVATE_KEY_MODE)
    write_atomic(
        out_dir / TLS_CERT, certificate.public_bytes(serialization.Encoding.PEM), CERTIFICATE_MODE
    )
    return certificate


def renewal_reason(
    ca: CertificateAuthority,
    out_dir: Path,
    request: CertificateRequest,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> str | None:
    """Why ``out_dir`` needs a new certificate for ``request``, or None if it is good."""
    try:
        certificate = x509.load_pem_x509_certificate((out_dir / TLS_CERT).read_bytes())
        key = serialization.load_pem_private_key((out_dir / TLS_KEY).read_bytes(), password=None)
        trusted = (out_dir / CA_CERT).read_bytes()
    except FileNotFoundError as missing:
        return f"{Path(str(missing.filename)).name} is missing"
    except ValueError:
        return "the files are not a PEM certificate and key"
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != certificate.public_key().public_bytes(*spki):
        return "tls.key is not the key of tls.crt"
    if not ca.signed(certificate) or trusted != ca.pem():
        return "it was issued by another CA"
    current = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if current != request.subject_alternative_names():
        return "its names differ from those requested"
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if utc_now(clock) >= end - (end - start) / 3:
        return f"it is in the last third of its life (expires {end:%Y-%m-%d %H:%M}Z)"
    return None


def ensure(
    ca: CertificateAuthority,
    out_dir: Path,
    request: CertificateRequest,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> str | None:
    """``issue`` only if ``renewal_reason`` gives a reason; returns it (None: nothing done)."""
    reason = renewal_reason(ca, out_dir, request, clock=clock)
    if reason is not None:
        issue(ca, out_dir, request, clock=clock)
    return reason


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
