"""docs/operations.md's configuration reference names every variable a service reads.

An operator configures the platform from that page; a setting missing from it is one nobody
can find without reading the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from meshcore.settings import ServiceSettings
from zoptal_analytics.settings import AnalyticsSettings
from zoptal_auth.settings import AuthSettings
from zoptal_billing.settings import BillingSettings
from zoptal_notification.settings import NotificationSettings
from zoptal_project.settings import ProjectSettings

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SETTINGS = [AuthSettings, ProjectSettings, BillingSettings, NotificationSettings, AnalyticsSettings]


def _documented() -> set[str]:
    """Variables named in the first cell of a table row of the reference."""
    names: set[str] = set()
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda cls: cls.service_name)
def test_every_variable_a_service_reads_is_documented(settings: type[ServiceSettings]) -> None:
    missing = [name for name in settings.environment_variables() if name not in _documented()]
    assert not missing, f"{settings.service_name} reads {missing}, not in docs/operations.md"


def test_environment_variables_are_what_from_env_reads() -> None:
    """Each listed variable, set to a bad value, is the one from_env complains about."""
    for name in BillingSettings.environment_variables():
        if name.endswith("_ADDR"):
            bad = "no-port-here"
        elif name in ("NOTICE_LEASE_SECONDS", "PEER_TIMEOUT_MS", "GRPC_PORT"):
            bad = "not-a-number"
        else:
            continue
        with pytest.raises(ValueError, match=name):
            BillingSettings.from_env({name: bad})
