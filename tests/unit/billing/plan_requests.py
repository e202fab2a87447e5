"""ChangeSubscription requests for the service-level tests."""

from __future__ import annotations

from zoptal_billing.domain import ChangeRequest, Subscription
from zoptal_billing.service import BillingService


def change(user: str, plan: str, token: str = "", **options: bool) -> ChangeRequest:
    """ChangeSubscription as the user themself (``by_admin`` and ``complimentary`` optional)."""
    return ChangeRequest(
        user_id=user, plan_id=plan, requested_by=f"user:{user}", payment_token=token, **options
    )


async def upgrade(billing: BillingService, user: str, plan: str) -> Subscription:
    """A paid upgrade with an approving test token (settles at once here)."""
    return await billing.change_subscription(change(user, plan, "tok_test_approve"))
