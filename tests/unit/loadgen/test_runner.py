"""zoptal_loadgen.runner: which journey each arrival starts."""

from __future__ import annotations

from collections import Counter

import pytest
from zoptal_loadgen.runner import WeightedRotation


def test_every_window_of_the_total_weight_holds_each_journey_by_its_weight() -> None:
    weights = {"browse": 3, "project": 1, "events": 1, "session": 1, "operator": 1}
    rotation = WeightedRotation(weights)
    picks = [rotation.next() for _ in range(70)]
    for start in range(0, 70, 7):
        assert Counter(picks[start : start + 7]) == weights


def test_a_heavy_journey_is_spread_out_rather_than_run_in_a_block() -> None:
    rotation = WeightedRotation({"browse": 3, "events": 1})
    assert [rotation.next() for _ in range(4)] == ["browse", "browse", "events", "browse"]


def test_fractional_weights_keep_their_proportion() -> None:
    rotation = WeightedRotation({"browse": 0.5, "events": 1.5})
    assert Counter(rotation.next() for _ in range(400)) == {"browse": 100, "events": 300}


def test_zero_weights_are_never_picked_and_all_zero_is_refused() -> None:
    rotation = WeightedRotation({"browse": 0, "events": 1})
    assert {rotation.next() for _ in range(10)} == {"events"}
    with pytest.raises(ValueError, match="above 0"):
        WeightedRotation({"browse": 0})
