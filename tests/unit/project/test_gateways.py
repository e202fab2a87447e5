"""How a peer's failure is reported to Project's own caller."""

from __future__ import annotations

import grpc
import pytest
from meshcore.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from meshcore.interceptors.errors import status_trailers
from meshcore.resilience.breaker import CircuitOpenError
from meshcore.resilience.retry import is_unsent
from zoptal_project.gateways import GrpcBillingGateway, peer_error
from zoptal_project.ports import BilledMetric


def rpc_error(
    code: grpc.StatusCode,
    details: str,
    trailers: tuple[tuple[str, str | bytes], ...] = (),
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=details
    )


def test_plan_limit_keeps_its_meaning_reason_facts_and_message() -> None:
    """Billing's RESOURCE_EXHAUSTED with reason PLAN_LIMIT_REACHED is a plan limit for our
    caller too, with the same facts (and, like Billing's, no retry information)."""
    refused = ResourceExhausted.of_plan_limit(
        "projects limit is 3", metric="projects", limit=3, plan_id="free", used=3
    )
    error = peer_error(
        rpc_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "projects limit is 3",
            status_trailers(refused, "zoptal.billing.v1"),
        ),
        "billing",
    )
    assert isinstance(error, ResourceExhausted)
    assert error.message == "projects limit is 3"
    assert error.reason == "PLAN_LIMIT_REACHED"
    assert error.metadata == {"metric": "projects", "limit": "3", "plan_id": "free", "used": "3"}
    assert error.retry_after is None


def test_resource_exhausted_without_a_plan_limit_reason_is_unavailable() -> None:
    """Without Billing's reason (a proxy's or a rate limiter's answer) it is no plan limit."""
    error = peer_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded"), "billing")
    assert isinstance(error, Unavailable)
    assert (error.reason, error.metadata) == ("DEPENDENCY_UNAVAILABLE", {"dependency": "billing"})


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


class _BreakerOpenBilling:
    """A Billing client whose breaker refuses every call unsent."""

    async def record_usage(self, *args: object, **kwargs: object) -> None:
        raise CircuitOpenError(5.0, endpoint="billing")


async def test_a_record_refused_unsent_says_so_through_its_cause() -> None:
    """The port's contract: the service tells an unsent failure by its cause, and queues no
    compensation for a usage that never reached Billing."""
    gateway = GrpcBillingGateway(_BreakerOpenBilling())  # type: ignore[arg-type]
    with pytest.raises(Unavailable) as failed:
        await gateway.record_usage("ada", BilledMetric.PROJECTS, 1, idempotency_key="p-1")
    assert is_unsent(failed.value.__cause__)
