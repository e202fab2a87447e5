"""RetryBudget: a share of calls plus a floor, over a sliding window."""

from __future__ import annotations

from meshcore.resilience import RetryBudget
from meshcore.testing import FakeClock


def spend_all(budget: RetryBudget) -> int:
    spent = 0
    while budget.try_spend():
        spent += 1
        if spent > 10_000:
            raise AssertionError("budget never ran out")
    return spent


def test_ratio_of_calls_bounds_retries(clock: FakeClock) -> None:
    """100 calls at ratio 0.2 allow 20 retries, no more."""
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, ttl=10_000, clock=clock)
    for _ in range(100):
        budget.record_call()
    assert spend_all(budget) == 20
    assert not budget.try_spend()


def test_floor_allows_retries_without_traffic(clock: FakeClock) -> None:
    """With no calls at all, 1 retry/s over a 10 s window still allows 10 retries."""
    budget = RetryBudget(ratio=0.2, min_retries_per_second=1, ttl=10_000, clock=clock)
    assert spend_all(budget) == 10


def test_budget_refills_as_the_window_slides(clock: FakeClock) -> None:
    """Spent retries expire with the window, so an outage that ends leaves a full budget."""
    budget = RetryBudget(ratio=0.5, min_retries_per_second=0, ttl=10_000, clock=clock)
    for _ in range(10):
        budget.record_call()
    assert spend_all(budget) == 5
    clock.advance(5)
    for _ in range(10):
        budget.record_call()
    assert spend_all(budget) == 5
    clock.advance(10.5)
    assert budget.available == 0
    for _ in range(4):
        budget.record_call()
    assert spend_all(budget) == 2


def test_retries_in_an_outage_stay_a_fraction_of_traffic(clock: FakeClock) -> None:
    """A steady 100 calls/s, each wanting 3 retries, gets about 20 % extra load, not 300 %."""
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, ttl=10_000, clock=clock)
    calls = retries = 0
    for _ in range(60):  # 60 s of traffic
        for _ in range(100):
            budget.record_call()
            calls += 1
            for _ in range(3):
                if budget.try_spend():
                    retries += 1
        clock.advance(1)
    assert 0.15 * calls <= retries <= 0.21 * calls
