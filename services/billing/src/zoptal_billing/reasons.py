"""Billing's own ``google.rpc.ErrorInfo`` reasons (shared ones: ``meshcore.reasons``).

billing.proto names each RPC's reasons; tests/unit/test_error_reasons_documented.py checks that
the proto and these agree.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["BillingReason"]


@unique
class BillingReason(StrEnum):
    PAYMENT_REQUIRED = "PAYMENT_REQUIRED"
    """INVALID_ARGUMENT on `payment_token`: the plan costs more, so a payment token is needed."""
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    """INVALID_ARGUMENT on `payment_token`: the payment provider refused it; the change is
    DECLINED."""
    PAYMENTS_NOT_CONFIGURED = "PAYMENTS_NOT_CONFIGURED"
    """FAILED_PRECONDITION: no payment provider is configured, so nothing can be bought (an admin
    may grant the plan)."""
    CHANGE_PENDING = "CHANGE_PENDING"
    """FAILED_PRECONDITION: another plan change awaits payment; wait until it is applied or
    declined."""
    USAGE_EXCEEDS_PLAN = "USAGE_EXCEEDS_PLAN"
    """FAILED_PRECONDITION: current usage is above the requested plan's limits (the message
    names the metric); release some first."""
