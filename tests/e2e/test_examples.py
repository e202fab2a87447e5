"""Every example in examples/ runs to success against the embedded platform (``make run``).

The examples share the e2e session's platform. When a service the examples need is not built
yet, the test skips with the reason outside CI and fails under ``CI=true``: it never passes
without having run the examples.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from zoptal_platform.catalogue import SERVICES, installed_services

from tests.e2e.platform import (
    REPO_ROOT,
    EmbeddedPlatform,
)
from tests.requirements import requirement_missing

pytestmark = pytest.mark.e2e

EXAMPLES = sorted(
    path.name for path in (REPO_ROOT / "examples").glob("*.py") if not path.name.startswith("_")
)


def _require_all_services() -> None:
    missing = sorted({spec.name for spec in SERVICES} - {s.name for s in installed_services()})
    if not missing:
        return
    requirement_missing(f"the examples need every service; not built yet: {', '.join(missing)}")


def test_examples_are_found() -> None:
    """The examples this test runs exist (a renamed folder cannot make the test vacuous)."""
    assert {"basic_client.py", "service_mesh.py", "error_handling.py"} <= set(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_against_the_platform(
    embedded_platform: EmbeddedPlatform, example: str
) -> None:
    """``python examples/<example>`` exits 0 talking to the running services."""
    _require_all_services()
    platform = embedded_platform
    env = dict(os.environ, **platform.client_env())
    env.pop("MESH_MODE", None)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / example)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{example} exited {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
        f"stderr:\n{result.stderr[-3000:]}\nplatform:\n{platform.text()[-3000:]}"
    )
