"""TEST MODE payment provider (``PAYMENT_PROVIDER=test``): no money moves, ever.

It behaves like a real provider's test mode, so the paid-plan flow is exercised end to end in
development, tests and the embedded platform:

* documented test tokens decide the outcome: ``tok_test_approve`` succeeds,
  ``tok_test_decline`` (``card_declined``) and ``tok_test_insufficient_funds``
  (``insufficient_funds``) are declined; any other token is ``INVALID_ARGUMENT`` naming
  ``payment_token``, as a real provider refuses a token it never issued;
* the outcome is asynchronous: a payment is ``PENDING`` for ``PAYMENT_TEST_SETTLE_SECONDS``
  (0 settles at once), then reports what its token decided;
* idempotency keys are honoured: the same key returns the same payment; the same key with a
  different user, amount, currency or token is ``ALREADY_EXISTS``.

Its ledger is its own table, ``test_mode_payments``, in Billing's database: a real provider keeps
this state on its side, and keeping it durable here means a restart never loses a pending
payment (it settles on the next poll), with no extra database for the embedded mode. Only this
module touches the table; Billing's service knows the provider only through ``payments.py``.
Settings refuse this provider in production (``ZOPTAL_ENV=production``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.errors import AlreadyExists, InvalidArgument, NotFound
from meshcore.timeutil import as_utc, utc_now
from sqlalchemy import select

from zoptal_billing.models import TestModePaymentRow
from zoptal_billing.payments import Payment, PaymentRequest, PaymentStatus
from zoptal_billing.reasons import BillingReason
from zoptal_billing.repository import insert_for

__all__ = ["TEST_TOKENS", "TestModePaymentProvider"]

TEST_TOKENS: dict[str, tuple[PaymentStatus, str]] = {
    "tok_test_approve": (PaymentStatus.SUCCEEDED, ""),
    "tok_test_decline": (PaymentStatus.DECLINED, "card_declined"),
    "tok_test_insufficient_funds": (PaymentStatus.DECLINED, "insufficient_funds"),
}
"""Token -> (outcome, decline code)."""

_DECLINE_MESSAGES = {
    "card_declined": "the card was declined (test mode)",
    "insufficient_funds": "the card has insufficient funds (test mode)",
}


class TestModePaymentProvider:
    """The test-mode adapter of the ``PaymentProvider`` port (see the module docstring)."""

    __test__ = False  # not a pytest class, despite the name
    name = "test"

    def __init__(
        self, database: Database, *, clock: Clock = SYSTEM_CLOCK, settle_seconds: float = 2.0
    ) -> None:
        self._db = database
        self._clock = clock
        self._settle = timedelta(seconds=settle_seconds)

    async def create_payment(self, request: PaymentRequest) -> Payment:
        outcome = TEST_TOKENS.get(request.payment_token)
        if outcome is None:
            raise InvalidArgument(
                "payment_token",
                "unknown token (test mode accepts " + ", ".join(sorted(TEST_TOKENS)) + ")",
                reason=BillingReason.PAYMENT_DECLINED,
            )
        status, decline_code = outcome
        now = utc_now(self._clock)
        async with self._db.session() as session:
            statement = (
                insert_for(session, TestModePaymentRow)
                .values(
                    id=f"pay_test_{uuid.uuid4().hex}",
                    idempotency_key=request.idempotency_key,
                    user_id=request.user_id,
                    description=request.description[:200],
                    amount_minor_units=request.amount_minor_units,
                    currency=request.currency,
                    token=request.payment_token,
                    outcome=status.value,
                    decline_code=decline_code,
                    created_at=now,
                    settles_at=now + self._settle,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
            )
            await session.execute(statement)
            row = (
                await session.scalars(
                    select(TestModePaymentRow).where(
                        TestModePaymentRow.idempotency_key == request.idempotency_key
                    )
                )
            ).one()
            if (row.user_id, row.amount_minor_units, row.currency, row.token) != (
                request.user_id,
                request.amount_minor_units,
                request.currency,
                request.payment_token,
            ):
                raise AlreadyExists(
                    f"idempotency_key {request.idempotency_key!r} was already used for another "
                    "payment (test mode)"
                )
            return self._state(row, now)

    async def payment(self, payment_id: str) -> Payment:
        now = utc_now(self._clock)
        async with self._db.session() as session:
            row = await session.get(TestModePaymentRow, payment_id)
            if row is None:
                raise NotFound("payment", payment_id)
            return self._state(row, now)

    @staticmethod
    def _state(row: TestModePaymentRow, now: datetime) -> Payment:
        if now < as_utc(row.settles_at):
            return Payment(id=row.id, status=PaymentStatus.PENDING)
        status = PaymentStatus(row.outcome)
        reason = ""
        if status is PaymentStatus.DECLINED:
            reason = f"{row.decline_code}: {_DECLINE_MESSAGES[row.decline_code]}"
        return Payment(id=row.id, status=status, decline_reason=reason)
