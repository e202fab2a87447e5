"""An adapter plugged in by ``PAYMENT_PROVIDER=tests.unit.billing.sample_provider:build``.

It shows the factory's shape only (the settings test builds it); it approves nothing.
"""

from __future__ import annotations

from meshcore.clock import Clock
from meshcore.db import Database
from meshcore.errors import Unavailable
from zoptal_billing.payments import Payment, PaymentRequest
from zoptal_billing.settings import BillingSettings


class SampleProvider:
    name = "sample"

    async def create_payment(self, request: PaymentRequest) -> Payment:
        raise Unavailable("the sample provider reaches no processor")

    async def payment(self, payment_id: str) -> Payment:
        raise Unavailable("the sample provider reaches no processor")


def build(settings: BillingSettings, database: Database, clock: Clock) -> SampleProvider:
    return SampleProvider()
