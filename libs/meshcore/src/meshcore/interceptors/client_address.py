"""The real client address of a call: the peer, or what trusted proxies say it was.

Behind a proxy (Istio's ingress gateway, then the pod's own sidecar) every call comes from the
proxy's address, so a limit keyed on ``context.peer()`` would be one budget shared by everyone.
A proxy that terminates the client's connection appends that client's address to
``x-forwarded-for``; anything to its left was written by the client and may be forged.

``trusted_proxy_hops`` (``TRUSTED_PROXY_HOPS``) says how many proxies in front of the service
append to the header: with ``N > 0`` the client is the N-th address from the right (``1`` when
the Istio ingress gateway is the only one; ``2`` with a cloud load balancer in front of it that
appends too). With ``0`` (the default, and right whenever clients reach the service directly)
the header is ignored, so a client cannot choose its own address. When the header is missing,
shorter than ``N`` or the chosen entry is not an IP address, the peer address is used: never
more than ``N`` hops are trusted, and never an entry that is not an address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import grpc.aio

from meshcore.interceptors.base import call_metadata

__all__ = ["FORWARDED_FOR", "client_address", "forwarded_client", "peer_host"]

FORWARDED_FOR = "x-forwarded-for"
_MAX_HEADER_LENGTH = 4096  # a header longer than this is not what a proxy chain writes


def peer_host(peer: str) -> str:
    """``ipv4:10.0.0.7:53210`` / ``ipv6:[::1]:53210`` -> the address without the port."""
    address = peer.split(":", 1)[1] if peer.startswith(("ipv4:", "ipv6:")) else peer
    host, separator, port = address.rpartition(":")
    host = host if separator and port.isdigit() else address
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def forwarded_client(values: Iterable[str], trusted_proxy_hops: int) -> str | None:
    """The address ``trusted_proxy_hops`` entries from the right of the ``x-forwarded-for``
    values (repeated headers joined in order), or None when there is no such valid address."""
    if trusted_proxy_hops <= 0:
        return None
    joined = ",".join(values)
    if not joined or len(joined) > _MAX_HEADER_LENGTH:
        return None
    entries = joined.split(",")
    if len(entries) < trusted_proxy_hops:
        return None
    try:
        return str(ipaddress.ip_address(entries[-trusted_proxy_hops].strip()))
    except ValueError:
        return None


def client_address(context: grpc.aio.ServicerContext[Any, Any], trusted_proxy_hops: int = 0) -> str:
    """The address of the client behind ``context``'s call (see the module's description)."""
    if trusted_proxy_hops > 0:
        values = [
            value if isinstance(value, str) else value.decode("latin-1")
            for key, value in call_metadata(context)
            if key == FORWARDED_FOR
        ]
        forwarded = forwarded_client(values, trusted_proxy_hops)
        if forwarded is not None:
            return forwarded
    return peer_host(context.peer() or "unknown")
