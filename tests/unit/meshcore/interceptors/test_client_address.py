"""The real client address: the peer, or the N-th x-forwarded-for entry from the right."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from meshcore.interceptors import RateLimitInterceptor
from meshcore.interceptors.client_address import forwarded_client, peer_host
from meshcore.settings import ServiceSettings, SettingsError
from prometheus_client import CollectorRegistry

from tests.unit.meshcore.interceptors.interceptor_testkit import EchoClient, EchoFactory


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:10.0.0.7:53210", "10.0.0.7"),
        ("ipv6:[::1]:53210", "::1"),
        ("unix:/tmp/socket", "unix:/tmp/socket"),
        ("unknown", "unknown"),
    ],
)
def test_peer_host_drops_the_port(peer: str, host: str) -> None:
    assert peer_host(peer) == host


@pytest.mark.parametrize(
    ("values", "hops", "expected"),
    [
        (["203.0.113.9"], 1, "203.0.113.9"),
        # The client wrote the left part; the gateway appended what it saw: the last entry.
        (["1.2.3.4, 203.0.113.9"], 1, "203.0.113.9"),
        (["1.2.3.4, 203.0.113.9, 10.0.0.1"], 2, "203.0.113.9"),
        (["1.2.3.4", "203.0.113.9"], 1, "203.0.113.9"),  # repeated headers join in order
        ([" 2001:DB8::1 "], 1, "2001:db8::1"),  # normalised, so one client is one key
        (["203.0.113.9"], 0, None),  # hops=0 trusts nothing
        (["203.0.113.9"], 2, None),  # shorter than the trusted hops
        ([], 1, None),
        ([""], 1, None),
        (["1.2.3.4, not-an-address"], 1, None),
        (["1.2.3.4, 203.0.113.9:443"], 1, None),  # a proxy writes bare addresses
        (["9.9.9.9," * 2000 + "203.0.113.9"], 1, None),  # absurdly long: not a proxy chain
    ],
)
def test_forwarded_client_trusts_exactly_n_hops(
    values: list[str], hops: int, expected: str | None
) -> None:
    assert forwarded_client(values, hops) == expected


def test_trusted_proxy_hops_is_a_validated_setting() -> None:
    assert ServiceSettings().trusted_proxy_hops == 0
    assert ServiceSettings.from_env({"TRUSTED_PROXY_HOPS": "2"}).trusted_proxy_hops == 2
    with pytest.raises(SettingsError, match="TRUSTED_PROXY_HOPS: must be >= 0"):
        ServiceSettings.from_env({"TRUSTED_PROXY_HOPS": "-1"})


async def _refused(client: EchoClient, forwarded: str) -> bool:
    """True when the call is refused by the limiter, False when it is answered."""
    try:
        await client.unary(b"x", metadata=(("x-forwarded-for", forwarded),))
    except grpc.aio.AioRpcError as error:
        return error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    return False


async def test_the_rate_limit_keys_anonymous_calls_on_the_forwarded_client(
    echo: EchoFactory,
) -> None:
    """With one trusted hop each forwarded client has its own budget behind one proxy address."""
    limiter = RateLimitInterceptor(60_000, 1, trusted_proxy_hops=1, registry=CollectorRegistry())
    client = await echo([limiter])
    assert not await _refused(client, "203.0.113.1")
    assert not await _refused(client, "203.0.113.2")  # another client: its own budget
    assert await _refused(client, "203.0.113.1")
    # Forging an address to the left changes nothing: the gateway's entry is the last one.
    assert await _refused(client, "198.51.100.7, 203.0.113.1")


async def test_without_trusted_hops_a_spoofed_header_is_ignored(echo: EchoFactory) -> None:
    """hops=0: every call is the peer's, whatever x-forwarded-for says."""
    limiter = RateLimitInterceptor(60_000, 1, registry=CollectorRegistry())
    client = await echo([limiter])
    assert not await _refused(client, "203.0.113.1")
    assert await _refused(client, "203.0.113.2")
