"""``meshcore.pki``: certificates for mutual TLS between meshcore services (outside Istio).

    python -m meshcore.pki ensure-ca --dir CA_DIR
    python -m meshcore.pki issue  --ca-dir CA_DIR --out OUT_DIR --service NAME [--dns HOST ...]
                                  [--ip ADDR ...] [--trust-domain D] [--days N]
    python -m meshcore.pki ensure ...   (as issue, only when needed: see ``ensure``)

A service folder then holds ``tls.crt``, ``tls.key`` (0600) and ``ca.crt``: point
``TLS_CERT_FILE``, ``TLS_KEY_FILE`` and ``TLS_CA_FILE`` at them. Running ``ensure`` again (a
cron job, an init container) renews a certificate in the last third of its life; servers and
clients pick the new files up without a restart (``meshcore.tls``).
"""

from meshcore.pki.authority import (
    CA_CERT,
    CA_KEY,
    DEFAULT_CA_DAYS,
    DEFAULT_LEAF_DAYS,
    TLS_CERT,
    TLS_KEY,
    CertificateAuthority,
    CertificateRequest,
    PkiError,
    ensure,
    ensure_ca,
    issue,
    renewal_reason,
)

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
