"""The ``google.rpc.ErrorInfo`` reasons meshcore and more than one service give.

A reason is a stable UPPER_SNAKE_CASE name a client branches on (``reason`` of
``zoptal.clients.errors.ApiError``). An error without a more precise reason carries its status
code's name. Each service keeps its own reasons in ``zoptal_<svc>/reasons.py``; protos/README.md
"Error details" lists these shared ones, each RPC's proto comment the ones it gives, and
``tests/unit/test_error_reasons_documented.py`` keeps the three in agreement.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["CROSS_CUTTING", "Reason"]


@unique
class Reason(StrEnum):
    # Any RPC (the interceptors, the database): listed once per proto file.
    RATE_LIMITED = "RATE_LIMITED"
    """RESOURCE_EXHAUSTED: the caller's call budget is spent; RetryInfo says when to retry."""
    CREDENTIALS_MISSING = "CREDENTIALS_MISSING"
    """UNAUTHENTICATED: the call needs a token and carries none."""
    TOKEN_INVALID = "TOKEN_INVALID"  # noqa: S105 - a reason name, not a secret
    """UNAUTHENTICATED: the token cannot be trusted (malformed, bad signature, unknown key,
    wrong issuer, audience or type, not yet valid); metadata ``token_problem`` says which."""
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 - a reason name, not a secret
    """UNAUTHENTICATED: the token has expired: refresh it (or log in) and call again."""
    TOKEN_REVOKED = "TOKEN_REVOKED"  # noqa: S105 - a reason name, not a secret
    """UNAUTHENTICATED: the token (or its session) was revoked: log in again."""
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
    """UNAVAILABLE: something this service needs (metadata ``dependency``: a peer service,
    ``database``, ``redis``) does not answer; RetryInfo says when to retry."""
    # Named by the RPCs that give them.
    PLAN_LIMIT_REACHED = "PLAN_LIMIT_REACHED"
    """RESOURCE_EXHAUSTED without RetryInfo: the user's plan allows no more (metadata
    ``metric``, ``limit``, ``plan_id``); retrying does not help, upgrading the plan does."""
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    """ALREADY_EXISTS: the caller already used this idempotency key for a different request."""


CROSS_CUTTING = frozenset(
    {
        Reason.RATE_LIMITED,
        Reason.CREDENTIALS_MISSING,
        Reason.TOKEN_INVALID,
        Reason.TOKEN_EXPIRED,
        Reason.TOKEN_REVOKED,
        Reason.DEPENDENCY_UNAVAILABLE,
    }
)
"""The reasons any RPC may give: each proto file's service comment lists them once."""
