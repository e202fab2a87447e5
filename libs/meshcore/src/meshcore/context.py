"""Per-call request context in ContextVars: who is calling, which request, how much time is left.

grpc.aio runs every RPC in its own task, so a value set by a server interceptor is visible to the
handler and to everything it awaits (including downstream calls made through meshcore's client
interceptors), and never leaks into another call. One ContextVar per key, as structlog does:
reading one value never copies or allocates a mapping.

Handlers read the context with ``current_principal()``, ``require_principal()``,
``current_request_id()`` and ``inbound_deadline()``; only interceptors (and tests, through
``call_scope``) set it.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import PermissionDenied, Unauthenticated

__all__ = [
    "Principal",
    "PrincipalKind",
    "call_scope",
    "current_principal",
    "current_request_id",
    "inbound_deadline",
    "inbound_traceparent",
    "new_request_id",
    "require_principal",
    "time_remaining",
]

PrincipalKind = Literal["user", "service"]

_EMPTY_CLAIMS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a user (from ``authorization: Bearer``) or a service
    (from ``x-service-token``), with the permissions and roles its token grants."""

    subject: str
    kind: PrincipalKind
    permissions: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(
        default_factory=lambda: _EMPTY_CLAIMS, repr=False, compare=False
    )
    key: str = field(init=False, repr=False, compare=False)
    """``user:<id>`` or ``service:<id>``: a stable key for limits and caches."""

    def __post_init__(self) -> None:
        # Built once per principal (they are cached with their token), not on every call that
        # the rate limiter keys on it.
        object.__setattr__(self, "key", f"{self.kind}:{self.subject}")

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def require_permission(self, permission: str) -> None:
        """Raise PERMISSION_DENIED naming ``permission`` unless this principal holds it."""
        if permission not in self.permissions:
            raise PermissionDenied(f"missing permission {permission!r}")


_principal: ContextVar[Principal | None] = ContextVar("meshcore.principal", default=None)
_request_id: ContextVar[str | None] = ContextVar("meshcore.request_id", default=None)
# Absolute deadline of the inbound call on the monotonic clock of the interceptor that set it.
_deadline: ContextVar[float | None] = ContextVar("meshcore.inbound_deadline", default=None)
# The W3C traceparent the caller sent; forwarded as-is when tracing is off in this process.
_traceparent: ContextVar[str | None] = ContextVar("meshcore.traceparent", default=None)


def current_principal() -> Principal | None:
    """The authenticated caller of the current RPC, or None (excluded method, no call)."""
    return _principal.get()


def require_principal() -> Principal:
    """The authenticated caller; UNAUTHENTICATED when the current call has none."""
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("this call requires credentials")
    return principal


def current_request_id() -> str | None:
    """The ``x-request-id`` of the current call (the caller's, or one made up on arrival)."""
    return _request_id.get()


def inbound_deadline() -> float | None:
    """Absolute deadline of the inbound call (monotonic seconds), or None when it has none."""
    return _deadline.get()


def inbound_traceparent() -> str | None:
    """The W3C ``traceparent`` the caller sent, if any."""
    return _traceparent.get()


def time_remaining(clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds left on the inbound call (may be negative once spent), or None for no deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return deadline - clock.monotonic()


def new_request_id() -> str:
    """A random 128-bit request id in hex.

    From a Mersenne Twister, not ``os.urandom``: a request id has to be unique, not secret (any
    caller may send its own ``x-request-id``), and ``os.urandom`` is a system call on every call
    that arrives without one.
    """
    return f"{_random_bits(128):032x}"


# A generator of its own, seeded from os.urandom: the global one belongs to the application,
# which may seed it (and then every process would repeat the same ids), and property-based
# tests watch it for use between their draws.
_request_ids = random.Random()
# Reseeded in a forked child (Celery's prefork pool), as ``random`` does for its global
# generator; otherwise parent and children would draw the same ids.
os.register_at_fork(after_in_child=_request_ids.seed)
_random_bits = _request_ids.getrandbits


@contextlib.contextmanager
def call_scope(
    *,
    principal: Principal | None = None,
    request_id: str | None = None,
    deadline: float | None = None,
    traceparent: str | None = None,
) -> Iterator[None]:
    """Set the call context for a block: for tests, background jobs and interceptors."""
    tokens = (
        _principal.set(principal),
        _request_id.set(request_id),
        _deadline.set(deadline),
        _traceparent.set(traceparent),
    )
    try:
        yield
    finally:
        _traceparent.reset(tokens[3])
        _deadline.reset(tokens[2])
        _request_id.reset(tokens[1])
        _principal.reset(tokens[0])


# Setters for meshcore's own interceptors. Each RPC runs in a fresh task with a copied context,
# so interceptors set these without resetting: the values die with the call's task.
set_principal = _principal.set
set_request_id = _request_id.set
set_deadline = _deadline.set
set_traceparent = _traceparent.set
