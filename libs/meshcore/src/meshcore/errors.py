"""Typed errors that *are* gRPC statuses.

Domain code raises these; exactly one server interceptor turns them into a status code and a
message (see ``meshcore.interceptors``). Servicers never call ``context.abort`` themselves, so
every service answers client mistakes the same way and no stack trace ever reaches a client.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

import grpc

__all__ = [
    "Aborted",
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "MeshError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "new_correlation_id",
]


class MeshError(Exception):
    """Base of every error that maps to a definite gRPC status.

    ``message`` is safe to show to the caller: never put secrets, SQL or stack traces in it.
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(MeshError):
    """The request is malformed; ``field`` names the offending field (dotted path)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def within(self, parent: str) -> InvalidArgument:
        """The same problem on ``<parent>.<field>``, for validators that name fields relative
        to the item they check (``within("events[3]")`` turns ``name`` into ``events[3].name``),
        so the path is built only when something is wrong."""
        return InvalidArgument(f"{parent}.{self.field}", self.problem)


class NotFound(MeshError):
    """The entity does not exist, or the caller may not know that it exists."""

    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, kind: str, identifier: str) -> None:
        super().__init__(f"{kind} {identifier!r} not found")
        self.kind = kind
        self.identifier = identifier


class AlreadyExists(MeshError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(MeshError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(MeshError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(MeshError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(MeshError):
    """A concurrency conflict (stale version, lost race): the caller may re-read and retry."""

    code = grpc.StatusCode.ABORTED


class ResourceExhausted(MeshError):
    """A quota, rate or capacity limit; ``retry_after`` (seconds) is sent as retry information."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(MeshError):
    """A dependency is down or overloaded; safe for the caller to retry later."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(MeshError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(MeshError):
    """A fault on our side; the client sees only the correlation id, the log has the details."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, correlation_id: str) -> None:
        super().__init__(f"internal error (correlation id {correlation_id})")
        self.correlation_id = correlation_id


def new_correlation_id() -> str:
    """A short random id that ties a client-visible INTERNAL status to its log record."""
    return uuid.uuid4().hex[:16]
