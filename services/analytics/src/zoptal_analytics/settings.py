"""Analytics settings: the common service settings plus the ingest buffer and real-time window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from meshcore.message_size import MiB
from meshcore.settings import ServiceSettings, SettingsError

__all__ = ["AnalyticsSettings"]


@dataclass(frozen=True, kw_only=True)
class AnalyticsSettings(ServiceSettings):
    service_name: ClassVar[str] = "analytics"
    largest_request_bytes: ClassVar[int] = 16 * MiB
    """The largest request the API allows, encoded (TrackEvents and each IngestEvents message are
    capped at 16 MiB); tests/message_bounds.py computes it."""
    peer_defaults: ClassVar[Mapping[str, str]] = {"auth": "127.0.0.1:4000"}
    """Auth only: polled for revoked tokens (ListRevocations)."""

    grpc_port: int = 4005
    metrics_port: int = 9405
    grpc_max_receive_message_bytes: int = 16 * MiB

    ingest_batch_size: int = 500
    """A batch is written as soon as this many events wait (size trigger)."""
    ingest_flush_interval_seconds: float = 0.02
    """Or once this long has passed since the previous batch began (time trigger): batches
    start at most this far apart, so a busy server writes one batch per interval with every
    call of that interval in it, and an event arriving after a quiet interval is written at
    once. Each batch costs half a millisecond or more of this process's CPU whatever its size
    (a pooled connection, a round trip or two, the commit); with 2 ms, a server taking a few
    thousand calls per second wrote batches of three or four events and spent more CPU
    writing than serving; going from 10 to 20 ms cut the server's CPU per TrackEvent by a
    tenth (replies also leave in bigger bursts, which grpc handles more cheaply), while 30 ms
    gained nothing more. Every ingest RPC waits for its batch's commit, so under load this
    is the latency batching adds."""
    ingest_max_pending_events: int = 50_000
    """Events accepted but not yet committed, across all calls; beyond it ingest answers
    RESOURCE_EXHAUSTED. Bounds the buffer's memory."""
    ingest_max_concurrent_flushes: int = 2
    """Batches written at the same time (SQLite serialises writers anyway; PostgreSQL gains)."""

    realtime_key_prefix: str = "zoptal:analytics:rt"
    realtime_redis_timeout_seconds: float = 0.5
    """Redis calls give up after this: real-time counts must never slow ingest down."""

    def _validate(self) -> None:
        problems = [
            f"{name.upper()}: must be positive"
            for name in (
                "ingest_batch_size",
                "ingest_flush_interval_seconds",
                "ingest_max_pending_events",
                "ingest_max_concurrent_flushes",
                "realtime_redis_timeout_seconds",
            )
            if getattr(self, name) <= 0
        ]
        if self.ingest_max_pending_events < self.ingest_batch_size:
            problems.append("INGEST_MAX_PENDING_EVENTS: must be at least INGEST_BATCH_SIZE")
        if problems:
            raise SettingsError("invalid analytics settings: " + "; ".join(problems))
        super()._validate()
