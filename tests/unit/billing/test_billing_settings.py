"""Billing settings: the notice outbox's knobs, and the check that keeps a send from repeating."""

from __future__ import annotations

from pathlib import Path

import pytest
from meshcore.settings import SettingsError
from zoptal_billing.app import BillingApp
from zoptal_billing.settings import BillingSettings


def test_the_notice_lease_is_a_setting() -> None:
    """NOTICE_LEASE_SECONDS reaches the dispatcher's lease; 60 s when unset."""
    assert BillingSettings.from_env({}).notice_lease_seconds == 60.0
    assert BillingSettings.from_env({"NOTICE_LEASE_SECONDS": "90"}).notice_lease_seconds == 90.0


def test_a_lease_shorter_than_one_send_is_refused() -> None:
    """One send is an Auth call then a Notification call, each up to PEER_TIMEOUT_MS: a lease
    within twice that could let a second replica take over a send that is still live."""
    with pytest.raises(SettingsError, match="NOTICE_LEASE_SECONDS"):
        BillingSettings.from_env({"NOTICE_LEASE_SECONDS": "10", "PEER_TIMEOUT_MS": "5000"})
    settings = BillingSettings.from_env({"NOTICE_LEASE_SECONDS": "11", "PEER_TIMEOUT_MS": "5000"})
    assert settings.notice_lease_seconds == 11.0


@pytest.mark.parametrize(
    "variable", ["NOTICE_POLL_SECONDS", "NOTICE_MAX_BACKOFF_SECONDS", "PEER_TIMEOUT_MS"]
)
def test_intervals_must_be_positive(variable: str) -> None:
    """A zero poll interval would spin; a zero backoff or deadline would retry at once."""
    with pytest.raises(SettingsError, match=variable):
        BillingSettings.from_env({variable: "0"})


def test_the_app_gives_the_dispatcher_the_configured_lease(tmp_path: Path) -> None:
    """The setting is not just parsed: the app's dispatcher holds notices for that long."""
    settings = BillingSettings.from_env({"NOTICE_LEASE_SECONDS": "75", "DATA_DIR": str(tmp_path)})
    assert BillingApp(settings).dispatcher.lease_seconds == 75.0
