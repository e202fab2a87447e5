"""The test suite's token issuer: one ES256 key made for this run, trusted by in-process servers.

Servers built for a test trust it through ``key_source=MINT.keys`` (``trusting_chain`` builds the
production chain that way). Nothing in the repository signs anything these servers accept.
"""

from __future__ import annotations

from typing import Any

import grpc
from meshcore.interceptors.chain import build_server_chain
from meshcore.testing import TokenMint

__all__ = ["MINT", "trusting_chain"]

MINT = TokenMint()


def trusting_chain(settings: Any, **overrides: Any) -> list[grpc.aio.ServerInterceptor]:
    """meshcore's production chain for ``settings``, verifying tokens against ``MINT``."""
    overrides.setdefault("key_source", MINT.keys)
    return build_server_chain(settings, **overrides)
