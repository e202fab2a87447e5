"""Reading the ``google.rpc`` details of a failed call: what a client can branch on.

The server side (``meshcore.interceptors.errors``) puts a ``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer of every error it sends; ``StatusDetails.of(error)`` reads it
back from a ``grpc.RpcError`` (``grpc.aio.AioRpcError`` included), and gives empty details for a
status that carries none (a proxy's, or another stack's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from meshcore.errors import FieldViolation

__all__ = ["STATUS_DETAILS_TRAILER", "ResourceRef", "StatusDetails"]

STATUS_DETAILS_TRAILER = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """``google.rpc.ResourceInfo``: which resource a NOT_FOUND is about."""

    type: str
    name: str


@dataclass(frozen=True, slots=True)
class StatusDetails:
    """The details of one status; every part is empty when the status carried none."""

    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    retry_after: float | None = None
    resource: ResourceRef | None = None

    @classmethod
    def of(cls, error: BaseException) -> StatusDetails:
        """The details ``error`` (a failed gRPC call) carries; empty for anything else."""
        trailing = getattr(error, "trailing_metadata", None)
        if not callable(trailing):
            return cls()
        return cls.from_trailers(trailing() or ())

    @classmethod
    def from_trailers(cls, trailers: Iterable[tuple[str, Any]]) -> StatusDetails:
        for key, value in trailers:
            if key == STATUS_DETAILS_TRAILER and isinstance(value, bytes):
                return cls.from_status_bytes(value)
        return cls()

    @classmethod
    def from_status_bytes(cls, serialized: bytes) -> StatusDetails:
        """Details of a serialized ``google.rpc.Status``; unknown or broken details are skipped
        (a client must never fail on what a server added)."""
        try:
            status = status_pb2.Status.FromString(serialized)
        except DecodeError:
            return cls()
        found: dict[str, Any] = {}
        for packed in status.details:
            for name, message in _KNOWN_DETAILS:
                detail = message()
                if packed.Is(detail.DESCRIPTOR) and _unpacked(packed, detail):
                    found[name] = detail
        info = found.get("info")
        bad_request = found.get("bad_request")
        retry = found.get("retry")
        resource = found.get("resource")
        return cls(
            reason=info.reason if info is not None else "",
            domain=info.domain if info is not None else "",
            metadata=dict(info.metadata) if info is not None else {},
            field_violations=tuple(
                FieldViolation(violation.field, violation.description)
                for violation in (bad_request.field_violations if bad_request else ())
            ),
            retry_after=_seconds(retry.retry_delay) if retry is not None else None,
            resource=(
                ResourceRef(resource.resource_type, resource.resource_name)
                if resource is not None
                else None
            ),
        )


_KNOWN_DETAILS = (
    ("info", error_details_pb2.ErrorInfo),
    ("bad_request", error_details_pb2.BadRequest),
    ("retry", error_details_pb2.RetryInfo),
    ("resource", error_details_pb2.ResourceInfo),
)


def _unpacked(packed: Any, detail: Any) -> bool:
    try:
        return bool(packed.Unpack(detail))
    except DecodeError:
        return False


def _seconds(duration: Any) -> float | None:
    seconds = duration.seconds + duration.nanos / 1e9
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
