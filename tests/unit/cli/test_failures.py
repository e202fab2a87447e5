"""zoptal_cli.failures: how a failed call is reported."""

from __future__ import annotations

from meshcore.resilience.breaker import CircuitOpenError
from zoptal_cli.failures import failure_of


def test_a_failure_raised_before_sending_is_reported_like_a_status() -> None:
    failure = failure_of(CircuitOpenError(2.5, endpoint="auth-1"), hint="wait")
    assert failure.as_dict()["code"] == "UNAVAILABLE"
    assert failure.as_dict()["retry_after_seconds"] == 2.5
    assert failure.lines()[-2:] == ["  retry after: 2.5 s", "  hint: wait"]
