"""Per-call request context: who is calling, which request, how much time is left.

grpc.aio runs every RPC in its own task, so a value set by a server interceptor is visible to the
handler and to everything it awaits (including downstream calls made through meshcore's client
interceptors), and never leaks into another call.

Everything meshcore keeps about a call lives in one ``CallState`` behind one ContextVar, set once
when the call arrives (``begin_call``); the interceptors then fill in its fields. Setting a
ContextVar copies part of the context's mapping, and each of the context's values is freed with
the call: with a ContextVar per value, the four or five that every call sets were about a sixth
of the whole interceptor chain's cost. Child tasks that a handler starts share the call's state,
as they would have copied the same values.

Handlers read the context with ``current_principal()``, ``require_principal()``,
``current_request_id()`` and ``inbound_deadline()``; only interceptors (and tests, through
``call_scope``) set it.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import os
import random
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import PermissionDenied, Unauthenticated
from meshcore.reasons import Reason

if TYPE_CHECKING:
    from meshcore.tls.identity import PeerCertificate

__all__ = [
    "CallState",
    "Principal",
    "PrincipalKind",
    "begin_call",
    "call_scope",
    "call_state",
    "current_call",
    "current_principal",
    "current_request_id",
    "detached_context",
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
        if not isinstance(self.claims, MappingProxyType):
            # A read-only copy: the principal is cached and shared by every call with the same
            # token, so a handler that changed its claims would change them for the others.
            object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Through the constructor, with the claims as a plain dict: the default empty claims
        # are a read-only mapping proxy, which pickle cannot copy; ``key`` is derived again.
        claims = dict(self.claims)
        return (Principal, (self.subject, self.kind, self.permissions, self.roles, claims))

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def require_permission(self, permission: str) -> None:
        """Raise PERMISSION_DENIED naming ``permission`` unless this principal holds it."""
        if permission not in self.permissions:
            raise PermissionDenied(f"missing permission {permission!r}")


class CallState:
    """What meshcore knows about the current call; one per call, made by ``begin_call``.

    Its fields default at class level, and it has no ``__init__`` of its own: one is made for
    every RPC, and making it is then a call into C instead of a Python frame. A field the call
    sets lands on the instance.
    """

    principal: Principal | None = None
    request_id: str | None = None
    # Absolute deadline of the inbound call on the monotonic clock of the interceptor that set it.
    deadline: float | None = None
    # The W3C traceparent the caller sent; forwarded as-is when tracing is off here.
    traceparent: str | None = None
    # The invocation metadata grpc gave the interceptors, and the ServicerContext of the call it
    # belongs to (bound by the handler's entry, which runs next in the call's task).
    metadata: Any = None
    servicer_context: Any = None
    # The caller's client certificate identity, once something asked for it
    # (``meshcore.interceptors.peer_binding``): read at most once per call.
    peer_certificate: PeerCertificate | None = None


_NO_CALL = CallState()  # what readers see outside any call; never written to
_call: ContextVar[CallState] = ContextVar("meshcore.call", default=_NO_CALL)


def begin_call(metadata: Any = None) -> CallState:
    """A fresh state for the call this task is about to run (``intercept_service`` calls it with
    the metadata grpc gave it)."""
    state = CallState()
    if metadata is not None:
        state.metadata = metadata
    _call.set(state)
    return state


current_call = _call.get
"""The current call's state to read; outside any call, an empty one that nobody writes.

(The ContextVar's own C method: interceptors read it several times per call, and a function
around it would add a Python frame to each read.)"""


def call_state() -> CallState:
    """The current call's state, made on first use outside a call (interceptors write to it)."""
    state = _call.get()
    if state is _NO_CALL:
        state = begin_call()
    return state


def current_principal() -> Principal | None:
    """The authenticated caller of the current RPC, or None (excluded method, no call)."""
    return current_call().principal


def require_principal() -> Principal:
    """The authenticated caller; UNAUTHENTICATED when the current call has none."""
    principal = current_call().principal
    if principal is None:
        raise Unauthenticated("this call requires credentials", reason=Reason.CREDENTIALS_MISSING)
    return principal


def current_request_id() -> str | None:
    """The ``x-request-id`` of the current call (the caller's, or one made up on arrival)."""
    return current_call().request_id


def inbound_deadline() -> float | None:
    """Absolute deadline of the inbound call (monotonic seconds), or None when it has none."""
    return current_call().deadline


def inbound_traceparent() -> str | None:
    """The W3C ``traceparent`` the caller sent, if any."""
    return current_call().traceparent


def time_remaining(clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds left on the inbound call (may be negative once spent), or None for no deadline."""
    deadline = current_call().deadline
    if deadline is None:
        return None
    return deadline - clock.monotonic()


def detached_context() -> contextvars.Context:
    """A copy of the current context for work that outlives its call (``meshcore.completion``):
    the same principal, request id and trace, but no deadline (downstream calls use their own
    budgets) and no servicer context (the call may be over before the work is)."""
    context = contextvars.copy_context()
    state = copy.copy(_call.get())
    state.deadline = None
    state.servicer_context = None
    context.run(_call.set, state)
    return context


def new_request_id() -> str:
    """A random 128-bit request id in hex.

    From a Mersenne Twister, not ``os.urandom``: a request id has to be unique, not secret (any
    caller may send its own ``x-request-id``), and ``os.urandom`` is a system call on every call
    that arrives without one.
    """
    # to_bytes().hex(): the same 32 lowercase hex digits as a "032x" format, in half the time.
    return _random_bits(128).to_bytes(16, "big").hex()


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
) -> Iterator[CallState]:
    """Set the call context for a block: for tests and background jobs."""
    state = CallState()
    state.principal = principal
    state.request_id = request_id
    state.deadline = deadline
    state.traceparent = traceparent
    token = _call.set(state)
    try:
        yield state
    finally:
        _call.reset(token)
