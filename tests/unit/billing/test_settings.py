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


def test_payments_are_test_mode_in_development_and_none_in_production() -> None:
    """Unset PAYMENT_PROVIDER: the test-mode provider in development; in production nothing
    can be bought until a real provider is plugged in."""
    assert BillingSettings.from_env({}).resolved_payment_provider == "test"
    production = BillingSettings.from_env(
        {"ZOPTAL_ENV": "production", "DATABASE_URL": "postgresql+asyncpg://billing@db/billing"}
    )
    assert production.resolved_payment_provider == "none"


def test_production_refuses_the_test_mode_provider() -> None:
    """PAYMENT_PROVIDER=test takes no real payments: production refuses to start on it."""
    with pytest.raises(SettingsError, match="PAYMENT_PROVIDER: the test-mode provider"):
        BillingSettings.from_env(
            {
                "ZOPTAL_ENV": "production",
                "DATABASE_URL": "postgresql+asyncpg://billing@db/billing",
                "PAYMENT_PROVIDER": "test",
            }
        )


@pytest.mark.parametrize("value", ["stripe", "module:", "a b:c"])
def test_an_unknown_provider_is_refused(value: str) -> None:
    """Only test, none or package.module:factory."""
    with pytest.raises(SettingsError, match="PAYMENT_PROVIDER"):
        BillingSettings.from_env({"PAYMENT_PROVIDER": value})


def test_a_plugged_in_provider_is_built_by_its_factory(tmp_path: Path) -> None:
    """PAYMENT_PROVIDER=package.module:factory builds the operator's adapter."""
    settings = BillingSettings.from_env(
        {
            "PAYMENT_PROVIDER": "tests.unit.billing.sample_provider:build",
            "DATA_DIR": str(tmp_path),
        }
    )
    app = BillingApp(settings)
    assert app.payments.name == "sample"
    assert app.service.changes is not None
