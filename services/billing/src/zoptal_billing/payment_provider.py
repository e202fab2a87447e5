"""Which payment provider Billing takes money through: ``PAYMENT_PROVIDER`` made concrete.

Apart from the port (``payments.py``) and its adapters (``payments_test_mode.py``, a plugged-in
``package.module:factory``), so that neither the port nor an adapter imports the other.
"""

from __future__ import annotations

import importlib

from meshcore.clock import Clock
from meshcore.db import Database

from zoptal_billing.payments import NoPaymentProvider, PaymentProvider, ProviderFactory
from zoptal_billing.payments_test_mode import TestModePaymentProvider
from zoptal_billing.settings import BillingSettings

__all__ = ["load_provider"]


def load_provider(settings: BillingSettings, database: Database, clock: Clock) -> PaymentProvider:
    """The provider ``PAYMENT_PROVIDER`` names (settings already refused ``test`` in production)."""
    choice = settings.resolved_payment_provider
    if choice == "none":
        return NoPaymentProvider()
    if choice == "test":
        return TestModePaymentProvider(
            database, clock=clock, settle_seconds=settings.payment_test_settle_seconds
        )
    module_name, _, attribute = choice.partition(":")
    factory: ProviderFactory = getattr(importlib.import_module(module_name), attribute)
    return factory(settings, database, clock)
