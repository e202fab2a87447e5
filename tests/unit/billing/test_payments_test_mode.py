"""The TEST MODE payment provider keeps a real provider's promises: tokens decide, outcomes
arrive later, idempotency keys are honoured, and its ledger is durable."""

from __future__ import annotations

import pytest
from meshcore.db import Database
from meshcore.errors import AlreadyExists, InvalidArgument, NotFound
from meshcore.testing import FakeClock
from zoptal_billing.payments import PaymentRequest, PaymentStatus
from zoptal_billing.payments_test_mode import TestModePaymentProvider

APPROVE = "tok_test_approve"


def pay(token: str = APPROVE, key: str = "k1", amount: int = 2900) -> PaymentRequest:
    return PaymentRequest(
        idempotency_key=key,
        user_id="ada",
        description="Zoptal plan pro",
        amount_minor_units=amount,
        currency="USD",
        payment_token=token,
    )


@pytest.fixture
def provider(billing_db: Database, clock: FakeClock) -> TestModePaymentProvider:
    return TestModePaymentProvider(billing_db, clock=clock, settle_seconds=5)


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("tok_test_approve", PaymentStatus.SUCCEEDED, ""),
        ("tok_test_decline", PaymentStatus.DECLINED, "card_declined: "),
        ("tok_test_insufficient_funds", PaymentStatus.DECLINED, "insufficient_funds: "),
    ],
)
async def test_the_token_decides_after_the_settle_delay(
    provider: TestModePaymentProvider,
    clock: FakeClock,
    token: str,
    status: PaymentStatus,
    reason: str,
) -> None:
    """Pending until PAYMENT_TEST_SETTLE_SECONDS have passed, then the token's outcome."""
    created = await provider.create_payment(pay(token))
    assert created.status is PaymentStatus.PENDING
    clock.advance(4.9)
    assert (await provider.payment(created.id)).status is PaymentStatus.PENDING
    clock.advance(0.1)
    settled = await provider.payment(created.id)
    assert settled.status is status
    assert settled.decline_reason.startswith(reason)
    assert bool(settled.decline_reason) == bool(reason)


async def test_an_unknown_token_names_payment_token(provider: TestModePaymentProvider) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await provider.create_payment(pay("tok_visa"))
    assert refused.value.field == "payment_token"


async def test_the_same_key_is_the_same_payment(provider: TestModePaymentProvider) -> None:
    """A retry returns the first payment; the key with another amount is ALREADY_EXISTS."""
    first = await provider.create_payment(pay())
    assert await provider.create_payment(pay()) == first
    with pytest.raises(AlreadyExists, match="idempotency_key"):
        await provider.create_payment(pay(amount=49900))
    assert (await provider.create_payment(pay(key="k2"))).id != first.id


async def test_the_ledger_outlives_the_provider(
    billing_db: Database, clock: FakeClock, provider: TestModePaymentProvider
) -> None:
    """Another instance (a restart) knows the payment and settles it on time."""
    created = await provider.create_payment(pay())
    clock.advance(5)
    restarted = TestModePaymentProvider(billing_db, clock=clock, settle_seconds=5)
    assert (await restarted.payment(created.id)).status is PaymentStatus.SUCCEEDED
    with pytest.raises(NotFound):
        await restarted.payment("pay_test_unknown")
