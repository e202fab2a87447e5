"""One gRPC channel per endpoint, reused by every call and health check, closed on shutdown.

Channels open lazily on first use (never at import or construction: Celery workers fork after
import), carry the manager's client interceptors, and cache their method callables so the
per-call path is two dict lookups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from meshcore.grpc_options import merged_options
from meshcore.message_size import MAX_RECEIVE_MESSAGE_BYTES_CEILING, MAX_RESPONSE_BYTES
from meshcore.tls.credentials import ReloadingChannelCredentials

__all__ = ["DEFAULT_CHANNEL_OPTIONS", "ChannelPool", "Connection"]

logger = logging.getLogger(__name__)

DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    # Keepalive must stay inside what meshcore servers enforce (meshcore.server: pings no more
    # often than every 10 s, at most 2 strikes, then GOAWAY): 30 s is three times slower, so a
    # client can never be cut off for pinging, yet a dead peer behind a silent network (no RST)
    # is noticed within 30 s + 10 s instead of when TCP gives up, minutes later.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Ping only while calls are in flight: an idle channel has nothing to protect, and idle
    # pings from every client of every replica are load Envoy sidecars and servers may refuse
    # (gRPC's default server enforcement counts them as strikes).
    ("grpc.keepalive_permit_without_calls", 0),
    # A replica that went away is retried at 0.5 s growing to at most 5 s (gRPC's default cap
    # is 120 s): a restarted replica must rejoin within a few health-check intervals.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # The message-size policy (meshcore.message_size): every reply fits 4 MiB, so meshcore
    # clients read with the limit every other stack has, and a reply over it fails here as it
    # would there. Requests may be as large as the largest receive limit a server may set;
    # beyond it a request fails here, RESOURCE_EXHAUSTED, without being sent.
    ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
    ("grpc.max_send_message_length", MAX_RECEIVE_MESSAGE_BYTES_CEILING),
)

Serializer = Callable[[Any], bytes]
Deserializer = Callable[[bytes], Any]


class Connection:
    """A channel and the method callables made on it (made once, reused by every call).

    Methods are *registered* with the channel (``_registered_method=True``, as the generated
    stubs do): gRPC core then resolves the method path once instead of on every call, which is
    worth about a tenth of a small call's client CPU.
    """

    __slots__ = ("address", "channel", "rpcs")

    def __init__(self, address: str, channel: grpc.aio.Channel) -> None:
        self.address = address
        self.channel = channel
        self.rpcs: dict[str, Any] = {}

    def unary_unary(
        self, path: str, serializer: Serializer, deserializer: Deserializer
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        rpc = self.rpcs.get(path)
        if rpc is None:
            rpc = self.rpcs[path] = self.channel.unary_unary(
                path,
                request_serializer=serializer,
                response_deserializer=deserializer,
                _registered_method=True,  # type: ignore[call-arg]  # in grpc, not in its stubs
            )
        return rpc  # type: ignore[no-any-return,unused-ignore]

    def stream_unary(
        self, path: str, serializer: Serializer, deserializer: Deserializer
    ) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
        key = "stream:" + path
        rpc = self.rpcs.get(key)
        if rpc is None:
            rpc = self.rpcs[key] = self.channel.stream_unary(
                path,
                request_serializer=serializer,
                response_deserializer=deserializer,
                _registered_method=True,  # type: ignore[call-arg]
            )
        return rpc  # type: ignore[no-any-return,unused-ignore]


class ChannelPool:
    """Channels keyed by ``host:port``; TLS when ``credentials`` are given.

    ``ReloadingChannelCredentials`` (certificate files) are followed by ``reload_credentials``:
    when the files changed, later calls get new channels made with the new certificate, and
    the old channels are closed with a grace for the calls still on them.
    """

    def __init__(
        self,
        *,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        credentials: grpc.ChannelCredentials | ReloadingChannelCredentials | None = None,
    ) -> None:
        # Laid over the defaults by name: pass only what should differ (meshcore.grpc_options).
        self._options = merged_options(DEFAULT_CHANNEL_OPTIONS, options)
        self._interceptors = list(interceptors)
        self.reloading: ReloadingChannelCredentials | None = None
        if isinstance(credentials, ReloadingChannelCredentials):
            self.reloading = credentials
            credentials = credentials.credentials
        self._credentials = credentials
        self._connections: dict[str, Connection] = {}
        self._closed = False

    def connection(self, address: str) -> Connection:
        found = self._connections.get(address)
        if found is not None:
            return found
        if self._closed:
            raise RuntimeError("the client manager is closed")
        interceptors = self._interceptors or None
        if self._credentials is None:
            channel = grpc.aio.insecure_channel(
                address, options=self._options, interceptors=interceptors
            )
        else:
            channel = grpc.aio.secure_channel(
                address, self._credentials, options=self._options, interceptors=interceptors
            )
        connection = self._connections[address] = Connection(address, channel)
        return connection

    def channel(self, address: str) -> grpc.aio.Channel:
        return self.connection(address).channel

    def addresses(self) -> list[str]:
        return list(self._connections)

    async def discard(self, address: str, grace: float | None = 5.0) -> None:
        """Close one endpoint's channel (its replica left), letting calls finish for ``grace``."""
        connection = self._connections.pop(address, None)
        if connection is not None:
            await connection.channel.close(grace)

    async def reload_credentials(self, grace: float | None = 5.0) -> bool:
        """Follow re-issued certificate files: True if they changed and new channels will be
        used from now on (the old ones get ``grace`` seconds for their calls, as ``discard``)."""
        if self.reloading is None or not self.reloading.reload_if_changed():
            return False
        self._credentials = self.reloading.credentials
        # Out of the pool before anything awaits: no call can pick an old channel any more.
        await self._close_all(grace)
        return True

    async def close(self, grace: float | None = None) -> None:
        """Close every channel; later ``connection`` calls raise."""
        self._closed = True
        await self._close_all(grace)

    async def _close_all(self, grace: float | None) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        results = await asyncio.gather(
            *(c.channel.close(grace) for c in connections), return_exceptions=True
        )
        for connection, result in zip(connections, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("closing channel to %s failed: %r", connection.address, result)
