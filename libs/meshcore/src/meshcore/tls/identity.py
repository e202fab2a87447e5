"""Service identity in certificates: SPIFFE IDs, and the verified peer of a call over mTLS.

A meshcore certificate names its service in one URI SAN, ``spiffe://<trust domain>/service/<name>``
(``meshcore.pki`` issues them). DNS and IP SANs are there for hostname verification only: many
services share ``localhost``/``127.0.0.1``, so they say where a server is, not who it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PeerCertificate",
    "read_peer_certificate",
    "service_from_spiffe_id",
    "spiffe_id",
    "validate_service_name",
]

_SERVICE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_TRUST_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?")


def validate_service_name(service: str) -> str:
    """``service`` if it can be both a DNS label and a SPIFFE path segment; ValueError if not."""
    if not _SERVICE_NAME.fullmatch(service):
        raise ValueError(f"service name must be a lowercase DNS label (a-z, 0-9, -): {service!r}")
    return service


def spiffe_id(trust_domain: str, service: str) -> str:
    """``spiffe://<trust_domain>/service/<service>``: the URI SAN of ``service``'s certificate."""
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise ValueError(f"trust domain must be a lowercase DNS name: {trust_domain!r}")
    return f"spiffe://{trust_domain}/service/{validate_service_name(service)}"


def service_from_spiffe_id(uri: str, trust_domain: str) -> str | None:
    """The service a SPIFFE ID names in ``trust_domain``, or None for any other URI."""
    prefix = f"spiffe://{trust_domain}/service/"
    if not uri.startswith(prefix):
        return None
    service = uri[len(prefix) :]
    return service if _SERVICE_NAME.fullmatch(service) else None


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What the transport proved about the caller of one call."""

    verified: bool
    """The call came over TLS with a client certificate the server verified against its CA
    (meshcore's mTLS port demands one, so every call that arrives there has one)."""
    service: str | None
    """The service named by the certificate's URI SAN in our trust domain; None when the
    certificate names none, or several."""


NO_CLIENT_CERTIFICATE = PeerCertificate(verified=False, service=None)


def read_peer_certificate(context: Any, trust_domain: str) -> PeerCertificate:
    """The caller's certificate identity, from the call's ``ServicerContext``.

    Reading it costs one ``auth_context()`` (a dict built by grpc): a caller that may ask more
    than once per call keeps the answer (``CallState.peer_certificate``, as the peer binding
    layer does).
    """
    return _read(context.auth_context(), trust_domain)


def _read(auth_context: dict[str, list[bytes]], trust_domain: str) -> PeerCertificate:
    # grpc fills x509_pem_cert only for a peer certificate that the handshake verified.
    if auth_context.get("transport_security_type") != [b"ssl"]:
        return NO_CLIENT_CERTIFICATE
    if "x509_pem_cert" not in auth_context:
        return NO_CLIENT_CERTIFICATE
    # peer_uri lists the certificate's URI SANs (and only those: DNS names are peer_dns).
    services = {
        service_from_spiffe_id(uri.decode("utf-8", "replace"), trust_domain)
        for uri in auth_context.get("peer_uri", ())
    }
    services.discard(None)
    return PeerCertificate(verified=True, service=services.pop() if len(services) == 1 else None)
