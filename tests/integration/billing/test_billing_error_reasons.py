"""Billing's own error reasons over real gRPC, read through the typed client.

Each plan-change refusal a client acts on differently has its reason: collect a payment token
(PAYMENT_REQUIRED), use another card (PAYMENT_DECLINED), wait for the change in flight
(CHANGE_PENDING), release usage first (USAGE_EXCEEDS_PLAN), ask an admin (PAYMENTS_NOT_CONFIGURED).
Billing runs on a fake clock, so a payment awaiting confirmation stays so during the test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from meshcore.client_manager import create_grpc_client_manager
from meshcore.errors import FieldViolation
from meshcore.testing import FakeClock
from zoptal.billing.v1 import billing_pb2 as pb
from zoptal.clients import BillingServiceClient
from zoptal.clients.errors import ApiError, FailedPreconditionError, InvalidArgumentError

from tests.integration.billing.billing_harness import (
    ADMIN,
    METER,
    DiscardNotices,
    as_user,
    billing_settings,
    running_billing,
)

ADA = as_user("ada")


@asynccontextmanager
async def billing_client(
    tmp_path: Path, **overrides: object
) -> AsyncIterator[BillingServiceClient]:
    settings = billing_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'billing.db'}",
        payment_test_settle_seconds=30.0,
        **overrides,
    )
    clock = FakeClock(wall_start=1_794_268_800.0 + time.time() % 86_400)  # mid-month
    async with running_billing(settings, sender=DiscardNotices(), clock=clock) as running:
        manager = create_grpc_client_manager(
            {"billing": running.address}, interceptors=(), health_checks=False
        )
        async with manager:
            yield BillingServiceClient(manager)


@pytest.fixture
async def billing(tmp_path: Path) -> AsyncIterator[BillingServiceClient]:
    async with billing_client(tmp_path) as client:
        yield client


async def refused(billing: BillingServiceClient, plan: str, token: str = "") -> ApiError:
    with pytest.raises(ApiError) as caught:
        await billing.change_subscription("ada", plan, payment_token=token, metadata=ADA)
    assert caught.value.domain == "zoptal.billing.v1"
    assert caught.value.retry_after is None
    return caught.value


async def test_an_upgrade_without_a_token_is_payment_required(
    billing: BillingServiceClient,
) -> None:
    error = await refused(billing, "pro")
    assert isinstance(error, InvalidArgumentError)
    assert error.reason == "PAYMENT_REQUIRED"
    assert error.field_violations == (
        FieldViolation("payment_token", "is required to change to plan 'pro'"),
    )


async def test_a_token_the_provider_refuses_is_payment_declined(
    billing: BillingServiceClient,
) -> None:
    error = await refused(billing, "pro", "tok_made_up")
    assert isinstance(error, InvalidArgumentError)
    assert error.reason == "PAYMENT_DECLINED"
    assert [violation.field for violation in error.field_violations] == ["payment_token"]
    reply = await billing.get_user_subscription("ada", metadata=ADA)
    assert reply.subscription.latest_change.status == pb.PLAN_CHANGE_STATUS_DECLINED


async def test_another_plan_while_a_payment_is_in_flight_is_change_pending(
    billing: BillingServiceClient,
) -> None:
    await billing.change_subscription("ada", "pro", payment_token="tok_test_approve", metadata=ADA)
    error = await refused(billing, "enterprise", "tok_test_approve")
    assert isinstance(error, FailedPreconditionError)
    assert error.reason == "CHANGE_PENDING"


async def test_a_downgrade_below_current_usage_is_usage_exceeds_plan(
    billing: BillingServiceClient,
) -> None:
    await billing.change_subscription("ada", "pro", complimentary=True, metadata=ADMIN)
    for index in range(4):  # one more project than the free plan allows
        await billing.record_usage("ada", pb.METRIC_PROJECTS, 1, f"p{index}", metadata=METER)
    error = await refused(billing, "free")
    assert isinstance(error, FailedPreconditionError)
    assert error.reason == "USAGE_EXCEEDS_PLAN"
    assert "projects usage 4" in (error.details() or "")


async def test_buying_without_a_payment_provider_is_payments_not_configured(
    tmp_path: Path,
) -> None:
    async with billing_client(tmp_path, payment_provider="none") as billing:
        error = await refused(billing, "pro", "tok_test_approve")
    assert isinstance(error, FailedPreconditionError)
    assert error.reason == "PAYMENTS_NOT_CONFIGURED"
