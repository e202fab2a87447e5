"""Billing's input rules (zoptal_billing.validation): every rejection names its field."""

from __future__ import annotations

import pytest
from meshcore.errors import InvalidArgument
from zoptal_billing import validation
from zoptal_billing.metering import Metric


def test_quantity_must_be_non_zero_and_counters_cannot_be_released() -> None:
    """Zero is refused; a negative delta is a release, allowed only for gauges."""
    assert validation.quantity(Metric.PROJECTS, -1) == -1
    with pytest.raises(InvalidArgument, match="quantity"):
        validation.quantity(Metric.PROJECTS, 0)
    with pytest.raises(InvalidArgument, match="counter"):
        validation.quantity(Metric.API_CALLS, -5)


def test_scope_is_required_exactly_for_per_project_metrics() -> None:
    """Members need the project id as scope; user-wide metrics must not have one."""
    assert validation.scope_for(Metric.MEMBERS_PER_PROJECT, "p1") == "p1"
    with pytest.raises(InvalidArgument, match="scope_id"):
        validation.scope_for(Metric.MEMBERS_PER_PROJECT, "")
    with pytest.raises(InvalidArgument, match="scope_id"):
        validation.scope_for(Metric.PROJECTS, "p1")


def test_idempotency_key_alphabet_and_length() -> None:
    """Keys are 1..128 characters of A-Z a-z 0-9 . _ : -."""
    assert validation.idempotency_key("project:1.2_3-4") == "project:1.2_3-4"
    for bad in ("", "a b", "k" * 129, "ключ"):
        with pytest.raises(InvalidArgument, match="idempotency_key"):
            validation.idempotency_key(bad)
