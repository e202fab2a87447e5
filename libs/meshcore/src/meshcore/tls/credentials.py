"""grpc credentials from ``TlsFiles`` that follow re-issued certificates without a restart.

Server: ``server_credentials`` gives grpc a certificate-configuration fetcher, which grpc calls
on every new connection's handshake; it returns a new configuration only when the files
changed (``CertificateWatcher``), so a re-issued certificate is served from the next
connection on, while established connections keep theirs until they end.

Client: grpc channel credentials are fixed when a channel is made, so
``ReloadingChannelCredentials`` makes new ones when the files change and the channel pool
(``meshcore.discovery.channels.ChannelPool.reload_credentials``) moves calls to new channels,
letting the old ones finish their calls.
"""

from __future__ import annotations

import logging

import grpc

from meshcore.tls.files import CertificateBundle, CertificateWatcher, TlsFiles

__all__ = ["ReloadingChannelCredentials", "server_credentials"]

logger = logging.getLogger(__name__)


def server_credentials(
    files: TlsFiles, *, require_client_auth: bool = True
) -> grpc.ServerCredentials:
    """Credentials for ``add_secure_port`` serving ``files``; with ``require_client_auth`` the
    handshake fails for a client without a certificate signed by ``files.ca_file``."""
    if files.cert_file is None or files.key_file is None:
        raise ValueError("a TLS server needs a certificate and its key")
    if require_client_auth and files.ca_file is None:
        raise ValueError("requiring client certificates needs the CA file that signs them")
    watcher = CertificateWatcher(files)

    def fetch_configuration() -> grpc.ServerCertificateConfiguration | None:
        # Runs on a grpc core thread for each handshake: it must never raise (grpc would fail
        # the handshake), and None means "keep serving the current configuration".
        try:
            bundle = watcher.reload_if_changed()
            return None if bundle is None else _server_configuration(bundle)
        except Exception:
            logger.exception("reloading the server certificate failed; keeping the current one")
            return None

    return grpc.dynamic_ssl_server_credentials(
        _server_configuration(watcher.current),
        # grpc documents None as "no change"; its type stubs forgot that case.
        fetch_configuration,  # type: ignore[arg-type]
        require_client_authentication=require_client_auth,
    )


def _server_configuration(bundle: CertificateBundle) -> grpc.ServerCertificateConfiguration:
    # server_credentials demands both files, so every bundle of its watcher has both.
    assert bundle.private_key is not None
    assert bundle.certificate_chain is not None
    return grpc.ssl_server_certificate_configuration(
        [(bundle.private_key, bundle.certificate_chain)],
        root_certificates=bundle.root_certificates,
    )


class ReloadingChannelCredentials:
    """Channel credentials for ``files`` (mTLS with a certificate, else TLS), remade when the
    files change; ``credentials`` is always the current ones."""

    def __init__(self, files: TlsFiles) -> None:
        self._watcher = CertificateWatcher(files)
        self.credentials = _channel_credentials(self._watcher.current)

    @property
    def serial(self) -> int | None:
        """Serial of the client certificate in use (None for TLS without one)."""
        return self._watcher.current.serial

    def reload_if_changed(self) -> bool:
        """Remake ``credentials`` if the files changed (and load well); True if they did."""
        bundle = self._watcher.reload_if_changed()
        if bundle is None:
            return False
        self.credentials = _channel_credentials(bundle)
        return True


def _channel_credentials(bundle: CertificateBundle) -> grpc.ChannelCredentials:
    # Server names are checked by grpc against the target's host: compose names (billing:5003)
    # and 127.0.0.1 both work because meshcore.pki puts them in the certificate's DNS and IP
    # SANs, so no ssl_target_name_override is needed (it would check every server against
    # one fixed name instead of the host the channel was asked to reach).
    return grpc.ssl_channel_credentials(
        root_certificates=bundle.root_certificates,
        private_key=bundle.private_key,
        certificate_chain=bundle.certificate_chain,
    )
