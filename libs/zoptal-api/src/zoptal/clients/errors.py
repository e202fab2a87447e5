"""Typed exceptions for failed calls, with the ``google.rpc`` details already read.

Every typed client raises these instead of a bare ``grpc.aio.AioRpcError``: one class per status
code a caller may want to catch (``NotFoundError``, ``ResourceExhaustedError``, ...), each still a
``grpc.aio.AioRpcError`` (``code()``, ``details()`` and the trailers are unchanged), plus what
the server said about it: ``reason`` (stable, listed per RPC in the protos), ``domain``,
``metadata``, every ``field_violations`` entry, ``retry_after`` and ``resource``::

    try:
        await projects.create_project(...)
    except ResourceExhaustedError as error:
        if error.reason == "PLAN_LIMIT_REACHED":
            ...  # upgrade the plan; retrying will not help
        elif error.retry_after is not None:
            ...  # rate limited: wait that long
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import grpc.aio
from meshcore.errors import FieldViolation
from meshcore.status_details import ResourceRef, StatusDetails

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "ApiError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "api_error",
]


class ApiError(grpc.aio.AioRpcError):
    """A Zoptal call that ended with a non-OK status (base of the typed errors)."""

    def __init__(self, failed: grpc.aio.AioRpcError) -> None:
        super().__init__(
            failed.code(),
            failed.initial_metadata(),
            failed.trailing_metadata(),
            failed.details(),
            failed.debug_error_string(),
        )
        self.status_details = StatusDetails.of(failed)

    @property
    def reason(self) -> str:
        """``ErrorInfo.reason``, e.g. ``PLAN_LIMIT_REACHED`` ("" when the server sent none)."""
        return self.status_details.reason

    @property
    def domain(self) -> str:
        return self.status_details.domain

    @property
    def metadata(self) -> Mapping[str, str]:
        return self.status_details.metadata

    @property
    def field_violations(self) -> tuple[FieldViolation, ...]:
        return self.status_details.field_violations

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before retrying helps; None when retrying will not help."""
        return self.status_details.retry_after

    @property
    def resource(self) -> ResourceRef | None:
        return self.status_details.resource


class InvalidArgumentError(ApiError):
    """The request is wrong: ``field_violations`` names every bad field."""


class NotFoundError(ApiError):
    """``resource`` names what was not found (or may not be seen by the caller)."""


class AlreadyExistsError(ApiError):
    pass


class PermissionDeniedError(ApiError):
    pass


class UnauthenticatedError(ApiError):
    pass


class FailedPreconditionError(ApiError):
    pass


class AbortedError(ApiError):
    """A concurrency conflict: re-read, then retry."""


class ResourceExhaustedError(ApiError):
    """A limit: with ``retry_after`` a rate (wait), without it a quota such as a plan limit."""


class UnavailableError(ApiError):
    pass


class DeadlineExceededError(ApiError):
    pass


class InternalError(ApiError):
    """A fault on the server; ``metadata["correlation_id"]`` ties it to the server's log."""


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.INTERNAL: InternalError,
}


def api_error(failed: grpc.aio.AioRpcError) -> ApiError:
    """The typed error for ``failed`` (itself when it already is one)."""
    if isinstance(failed, ApiError):
        return failed
    return _BY_CODE.get(failed.code(), ApiError)(failed)
