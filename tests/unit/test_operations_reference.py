"""docs/operations.md's configuration reference names every variable a service or the
embedded launcher reads.

An operator configures the platform from that page; a setting missing from it is one nobody
can find without reading the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zoptal_platform
from meshcore.settings import ServiceSettings
from zoptal_analytics.settings import AnalyticsSettings
from zoptal_auth.settings import AuthSettings
from zoptal_billing.settings import BillingSettings
from zoptal_notification.settings import NotificationSettings
from zoptal_platform.__main__ import ENVIRONMENT_VARIABLES as LAUNCHER_VARIABLES
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


def test_every_variable_the_launcher_reads_is_documented() -> None:
    missing = [name for name in LAUNCHER_VARIABLES if name not in _documented()]
    assert not missing, f"the launcher reads {missing}, not in docs/operations.md"


def test_the_launcher_names_no_zoptal_variable_outside_its_list() -> None:
    """A new launcher variable read as a literal instead of through the list shows up here."""
    package = Path(zoptal_platform.__file__).parent
    named = {
        name
        for module in package.glob("*.py")
        for name in re.findall(r"\bZOPTAL_[A-Z0-9_]+\b", module.read_text())
    }
    # The launcher also passes on service variables such as ZOPTAL_ENV; those are not its own.
    service_variables = {name for cls in SETTINGS for name in cls.environment_variables()}
    assert named - service_variables <= set(LAUNCHER_VARIABLES)


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
