"""``PeerBindingInterceptor``: a service token counts only from the service its certificate names.

On a server with a mutual-TLS port (``MTLS_PORT``), runs right after auth:

* a call with a service principal that arrived over mTLS passes only when the token's
  ``serviceName`` claim equals the service of the verified client certificate's URI SAN
  (``spiffe://<trust domain>/service/<name>``): a stolen token is useless without the key of
  the certificate it belongs with;
* a service principal on a call without a verified client certificate (the plaintext
  ``GRPC_PORT``) is refused: service tokens are accepted only over mTLS;
* user principals (and calls without one: excluded methods) pass either way.

Both refusals are UNAUTHENTICATED. The layer reads the certificate only for service
principals, and ``build_server_chain`` adds it only when mTLS is configured, so user calls and
servers without mTLS pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc.aio

from meshcore.context import current_call
from meshcore.errors import Unauthenticated
from meshcore.interceptors.base import RpcMethod
from meshcore.interceptors.errors import abort_with
from meshcore.interceptors.hooks import AdmissionInterceptor
from meshcore.tls.identity import read_peer_certificate

__all__ = ["PeerBindingInterceptor"]

SERVICE_NAME_CLAIM = "serviceName"


def _every_method(rpc: RpcMethod) -> bool:
    return True


class PeerBindingInterceptor(AdmissionInterceptor):
    """Binds service principals to the client certificate of their connection (see above)."""

    def __init__(
        self, trust_domain: str, *, applies_to: Callable[[RpcMethod], bool] = _every_method
    ) -> None:
        super().__init__()
        self.trust_domain = trust_domain
        self._applies_to = applies_to

    def applies_to(self, rpc: RpcMethod) -> bool:
        # The auth layer's choice (build_server_chain passes it): where auth does not run there
        # is no principal to bind. Asked once per method, not per call.
        return self._applies_to(rpc)

    def admit(
        self, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod
    ) -> Awaitable[None] | None:
        state = current_call()
        principal = state.principal
        if principal is None or principal.kind != "service":
            return None
        peer = state.peer_certificate
        if peer is None:  # read once per call, only for the service principals that need it
            peer = state.peer_certificate = read_peer_certificate(context, self.trust_domain)
        if not peer.verified:
            return abort_with(
                context, Unauthenticated("service tokens are accepted only over mTLS"), rpc
            )
        if peer.service is None or principal.claims.get(SERVICE_NAME_CLAIM) != peer.service:
            return abort_with(
                context, Unauthenticated("service token does not match the client certificate"), rpc
            )
        return None
