"""Transport security for meshcore servers and clients outside Istio (TLS and mutual TLS).

* ``TlsFiles``: where a service's certificate, key and CA are (``TLS_CERT_FILE``, ...).
* ``server_credentials``: a server port requiring client certificates, re-reading the files
  on each handshake; ``ReloadingChannelCredentials``: the client side, remade on change.
* ``read_peer_certificate``: the calling service named by a verified client certificate's URI SAN
  ``spiffe://<trust domain>/service/<name>``.

``meshcore.pki`` issues the certificates.
"""

from meshcore.tls.credentials import ReloadingChannelCredentials, server_credentials
from meshcore.tls.files import (
    CertificateBundle,
    CertificateFilesError,
    CertificateWatcher,
    TlsFiles,
)
from meshcore.tls.identity import (
    PeerCertificate,
    read_peer_certificate,
    service_from_spiffe_id,
    spiffe_id,
)

__all__ = [
    "CertificateBundle",
    "CertificateFilesError",
    "CertificateWatcher",
    "PeerCertificate",
    "ReloadingChannelCredentials",
    "TlsFiles",
    "read_peer_certificate",
    "server_credentials",
    "service_from_spiffe_id",
    "spiffe_id",
]
