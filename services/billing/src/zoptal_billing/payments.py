"""The payment provider port: how Billing charges for a plan and learns whether it was paid.

Billing never talks to a payment processor directly; it talks to a ``PaymentProvider``. The
platform ships one adapter, the test-mode provider (``payments_test_mode.py``,
``PAYMENT_PROVIDER=test``), which behaves like a real provider's test mode and is refused in
production. A real processor is an adapter the operator plugs in with
``PAYMENT_PROVIDER=package.module:factory`` (see ``payment_provider.load_provider`` and
docs/operations.md).

The contract every adapter keeps:

* ``create_payment`` is idempotent by ``PaymentRequest.idempotency_key``: the same key returns
  the same payment, the same key with other parameters is ``AlreadyExists``. Billing derives the
  key from its plan change, so a retried submission never charges twice.
* A token the provider does not know or refuses is ``InvalidArgument("payment_token", ...,
  reason=BillingReason.PAYMENT_DECLINED)`` (the caller's ``ErrorInfo`` reason); a provider
  that cannot be reached is ``Unavailable`` (Billing keeps the change and submits it again).
* The outcome may be known at once or later: a ``PENDING`` payment is asked about again with
  ``payment(payment_id)`` until it is ``SUCCEEDED`` or ``DECLINED``. Real providers also push
  the outcome by webhook; Billing has no public endpoint in this reference, so it polls: on
  every read of a subscription with a change awaiting payment, and in a background pass.
* Calls are made outside Billing's database transactions (they are network calls).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from meshcore.clock import Clock
from meshcore.db import Database
from meshcore.errors import FailedPrecondition

from zoptal_billing.reasons import BillingReason

if TYPE_CHECKING:
    from zoptal_billing.settings import BillingSettings

__all__ = [
    "NoPaymentProvider",
    "Payment",
    "PaymentProvider",
    "PaymentRequest",
    "PaymentStatus",
    "ProviderFactory",
]


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    idempotency_key: str
    user_id: str
    description: str
    """What is bought, for the provider's records (``Zoptal plan pro``)."""
    amount_minor_units: int
    currency: str
    payment_token: str


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    status: PaymentStatus
    decline_reason: str = ""
    """For ``DECLINED``: the provider's reason, shown to the user (``card_declined: ...``)."""


class PaymentProvider(Protocol):
    """What Billing needs from a payment processor (see the module docstring)."""

    name: str
    """Shown in logs and refused by name in production (``test``)."""

    async def create_payment(self, request: PaymentRequest) -> Payment: ...

    async def payment(self, payment_id: str) -> Payment: ...


ProviderFactory = Callable[["BillingSettings", Database, Clock], PaymentProvider]
"""What ``PAYMENT_PROVIDER=module:attribute`` names: builds the adapter from Billing's settings
(its own configuration comes from its own environment variables), database and clock."""


class NoPaymentProvider:
    """``PAYMENT_PROVIDER=none``: nothing can be bought (downgrades and admin grants still work).

    The production default until an operator plugs a real provider in, so a deployment never
    takes test-mode payments by accident and never starts without saying how it takes money.
    """

    name = "none"

    async def create_payment(self, request: PaymentRequest) -> Payment:
        raise FailedPrecondition(
            "paid plans cannot be bought here: no payment provider is configured "
            "(PAYMENT_PROVIDER=none); an admin may grant the plan instead",
            reason=BillingReason.PAYMENTS_NOT_CONFIGURED,
        )

    async def payment(self, payment_id: str) -> Payment:
        raise FailedPrecondition(
            f"no payment provider is configured to ask about {payment_id!r}",
            reason=BillingReason.PAYMENTS_NOT_CONFIGURED,
        )
