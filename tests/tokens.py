"""The test suite's token issuer: one ES256 key made for this run, trusted by in-process servers.

Servers built for a test trust it through ``key_source=MINT.keys`` (``trusting_chain`` builds the
production chain that way). Nothing in the repository signs anything these servers accept.
"""

from __future__ import annotations

import grpc
from meshcore.interceptors.chain import AuthOptions, build_server_chain
from meshcore.settings import ServiceSettings
from meshcore.testing import TokenMint
from prometheus_client import REGISTRY, CollectorRegistry

__all__ = ["MINT", "trusting_chain"]

MINT = TokenMint()


def trusting_chain(
    settings: ServiceSettings, *, metrics_registry: CollectorRegistry = REGISTRY
) -> list[grpc.aio.ServerInterceptor]:
    """meshcore's production chain for ``settings``, verifying tokens against ``MINT``."""
    return build_server_chain(
        settings, auth=AuthOptions(key_source=MINT.keys), metrics_registry=metrics_registry
    )
