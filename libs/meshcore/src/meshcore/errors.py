"""Typed errors that *are* gRPC statuses.

Domain code raises these; exactly one server interceptor turns them into a status code, a
message and ``google.rpc`` error details (see ``meshcore.interceptors.errors``). Servicers never
call ``context.abort`` themselves, so every service answers client mistakes the same way and no
stack trace ever reaches a client.

Every error carries a stable ``reason`` (``google.rpc.ErrorInfo``): the status code's name unless
the raiser names something more precise (``PLAN_LIMIT_REACHED``), plus optional string
``metadata``. Some carry more: every field violation of an ``InvalidArgument`` (``BadRequest``),
the resource of a ``NotFound`` (``ResourceInfo``), a ``retry_after`` (``RetryInfo``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import grpc

from meshcore.reasons import Reason

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
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

    ``message`` is safe to show to the caller: never put secrets, SQL or stack traces in it;
    the same goes for ``metadata``. ``reason`` is a stable UPPER_SNAKE_CASE name a client can
    branch on; each RPC's proto comment lists the reasons it may give. ``retry_after`` (seconds)
    says that retrying helps, and when.
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # A plain str even for a ``StrEnum`` member: what travels is the name, nothing more.
        self.reason = str(reason) if reason is not None else self.code.name
        self.metadata = dict(metadata) if metadata else {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: its dotted path (``events[3].name``) and what is wrong with it."""

    field: str
    problem: str

    def within(self, parent: str) -> FieldViolation:
        return FieldViolation(f"{parent}.{self.field}", self.problem)


class InvalidArgument(MeshError):
    """The request is malformed; ``field`` names the (first) offending field (dotted path).

    ``InvalidArgument.of(violations)`` reports several fields at once; all of them travel as
    ``google.rpc.BadRequest`` field violations, the message names each.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str, *, reason: str | None = None) -> None:
        self._describe((FieldViolation(field, problem),), reason)

    @classmethod
    def of(
        cls, violations: Iterable[FieldViolation], *, reason: str | None = None
    ) -> InvalidArgument:
        """One error for several invalid fields (at least one)."""
        found = tuple(violations)
        if not found:
            raise ValueError("InvalidArgument.of needs at least one violation")
        error = cls.__new__(cls)
        error._describe(found, reason)
        return error

    def _describe(self, violations: tuple[FieldViolation, ...], reason: str | None) -> None:
        message = "; ".join(f"{v.field}: {v.problem}" for v in violations)
        MeshError.__init__(self, message, reason=reason)
        self.violations = violations
        self.field = violations[0].field
        self.problem = violations[0].problem

    def within(self, parent: str) -> InvalidArgument:
        """The same problems on ``<parent>.<field>``, for validators that name fields relative
        to the item they check (``within("events[3]")`` turns ``name`` into ``events[3].name``),
        so the path is built only when something is wrong."""
        reason = self.reason if self.reason != self.code.name else None
        return InvalidArgument.of((v.within(parent) for v in self.violations), reason=reason)


class NotFound(MeshError):
    """The entity does not exist, or the caller may not know that it exists.

    ``kind`` and ``identifier`` travel as ``google.rpc.ResourceInfo``.
    """

    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, kind: str, identifier: str, *, reason: str | None = None) -> None:
        super().__init__(f"{kind} {identifier!r} not found", reason=reason)
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

    @classmethod
    def of_plan_limit(
        cls, message: str, *, metric: str, limit: int | None, plan_id: str, used: int
    ) -> ResourceExhausted:
        """The user's plan allows no more ``metric``: reason PLAN_LIMIT_REACHED with the facts
        as metadata, and no retry information (waiting does not help, upgrading does)."""
        return cls(
            message,
            reason=Reason.PLAN_LIMIT_REACHED,
            metadata={
                "metric": metric,
                "limit": "" if limit is None else str(limit),
                "plan_id": plan_id,
                "used": str(used),
            },
        )


class Unavailable(MeshError):
    """A dependency is down or overloaded; safe for the caller to retry later."""

    code = grpc.StatusCode.UNAVAILABLE

    @classmethod
    def of_dependency(
        cls, dependency: str, message: str, *, retry_after: float | None = 1.0
    ) -> Unavailable:
        """``dependency`` (a peer service, ``database``, ``redis``) does not answer: reason
        DEPENDENCY_UNAVAILABLE, with the dependency's name in the metadata."""
        return cls(
            message,
            reason=Reason.DEPENDENCY_UNAVAILABLE,
            metadata={"dependency": dependency},
            retry_after=retry_after,
        )


class DeadlineExceeded(MeshError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(MeshError):
    """The work was cancelled (a dependency's call was, under this one)."""

    code = grpc.StatusCode.CANCELLED


class Internal(MeshError):
    """A fault on our side; the client sees only the correlation id, the log has the details."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, correlation_id: str) -> None:
        super().__init__(
            f"internal error (correlation id {correlation_id})",
            metadata={"correlation_id": correlation_id},
        )
        self.correlation_id = correlation_id


def new_correlation_id() -> str:
    """A short random id that ties a client-visible INTERNAL status to its log record."""
    return uuid.uuid4().hex[:16]
