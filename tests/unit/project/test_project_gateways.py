"""How a peer's failure is reported to Project's own caller."""

from __future__ import annotations

import grpc
from meshcore.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from meshcore.resilience.breaker import CircuitOpenError
from zoptal_project.gateways import peer_error


def rpc_error(
    code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=details
    )


def test_plan_limit_keeps_its_meaning_and_message() -> None:
    """Billing's RESOURCE_EXHAUSTED without retry info is a plan limit for our caller too."""
    error = peer_error(
        rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "projects limit is 3"), "billing"
    )
    assert isinstance(error, ResourceExhausted)
    assert error.message == "projects limit is 3"


def test_rate_limited_peer_is_unavailable_with_its_pushback() -> None:
    """A rate-limit answer (it carries retry-after) is our dependency being busy, not a quota."""
    error = peer_error(
        rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limited", (("retry-after", "7"),)),
        "billing",
    )
    assert isinstance(error, Unavailable)
    assert error.retry_after == 7.0


def test_answers_about_the_request_keep_their_status() -> None:
    """ALREADY_EXISTS, FAILED_PRECONDITION and NOT_FOUND pass through as such."""
    assert isinstance(
        peer_error(rpc_error(grpc.StatusCode.ALREADY_EXISTS, "k"), "b"), AlreadyExists
    )
    assert isinstance(
        peer_error(rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "k"), "b"), FailedPrecondition
    )
    assert isinstance(peer_error(rpc_error(grpc.StatusCode.NOT_FOUND, "k"), "b"), NotFound)


def test_everything_else_is_unavailable_never_unknown() -> None:
    """Down, timed out, refusing our token, an open breaker: all UNAVAILABLE to our caller."""
    for code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    ):
        error = peer_error(rpc_error(code, "boom"), "billing")
        assert isinstance(error, Unavailable)
        assert error.message == "billing is unavailable"
    assert isinstance(peer_error(CircuitOpenError(5.0, endpoint="b"), "billing"), Unavailable)
    assert isinstance(peer_error(ConnectionResetError(), "billing"), Unavailable)
