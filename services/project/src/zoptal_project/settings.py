"""The Project service's one settings object, read from the environment (docs/conventions.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from meshcore.message_size import KiB
from meshcore.settings import ServiceSettings

__all__ = ["ProjectSettings"]


@dataclass(frozen=True, kw_only=True)
class ProjectSettings(ServiceSettings):
    service_name: ClassVar[str] = "project"
    largest_request_bytes: ClassVar[int] = 16 * KiB
    """The largest request the API allows, encoded (CreateProject and UpdateProject: name and
    description); tests/message_bounds.py computes it."""
    peer_defaults: ClassVar[Mapping[str, str]] = {
        "auth": "127.0.0.1:4000",
        "billing": "127.0.0.1:4003",
        "analytics": "127.0.0.1:4005",
    }

    grpc_port: int = 4001
    metrics_port: int = 9401

    billing_timeout_ms: float = 3_000.0
    """Deadline of each Billing call when the inbound call has none (it is inherited if set)."""
    analytics_timeout_ms: float = 2_000.0
    usage_outbox_poll_seconds: float = 2.0
    """How often queued releases and compensations are retried towards Billing."""
    stale_create_seconds: float = 300.0
    """A create or member add stuck this long (Project died mid-way) is undone by the sweeper."""
