"""Every example in examples/ runs to success against the embedded platform (``make run``).

Marked ``e2e``: it starts the whole platform (on its own shifted ports, so it can run beside the
e2e suite and a developer's own ``make run``). When a service the examples need is not built
yet, the test skips with the reason outside CI and fails under ``CI=true``: it never passes
without having run the examples.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from zoptal_platform.catalogue import SERVICES, installed_services

from tests.e2e.platform import (
    REPO_ROOT,
    START_TIMEOUT_SECONDS,
    EmbeddedPlatform,
    pump_output,
    stop_platform,
)

pytestmark = pytest.mark.e2e

PORT_OFFSET = 3000  # tests/e2e uses 2000; distinct ports let both platforms coexist
EXAMPLES = sorted(
    path.name for path in (REPO_ROOT / "examples").glob("*.py") if not path.name.startswith("_")
)


def _require_all_services() -> None:
    missing = sorted({spec.name for spec in SERVICES} - {s.name for s in installed_services()})
    if not missing:
        return
    message = f"the examples need every service; not built yet: {', '.join(missing)}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: failing instead of skipping)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPlatform]:
    _require_all_services()
    data_dir = tmp_path_factory.mktemp("examples-platform")
    env = dict(os.environ, ZOPTAL_PORT_OFFSET=str(PORT_OFFSET), ZOPTAL_DATA_DIR=str(data_dir))
    process = subprocess.Popen(
        ["make", "run"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = EmbeddedPlatform(process, data_dir, PORT_OFFSET)
    ready = threading.Event()
    reader = threading.Thread(target=pump_output, args=(process.stdout, running.output, ready))
    reader.start()
    ready.wait(START_TIMEOUT_SECONDS)
    if "is SERVING" not in running.text():
        stop_platform(running)
        reader.join(10)
        pytest.fail("the platform did not start:\n" + running.text()[-6000:])
    try:
        yield running
    finally:
        stop_platform(running)
        reader.join(30)


def test_examples_are_found() -> None:
    """The examples this test runs exist (a renamed folder cannot make the test vacuous)."""
    assert {"basic_client.py", "service_mesh.py", "error_handling.py"} <= set(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_against_the_platform(platform: EmbeddedPlatform, example: str) -> None:
    """``python examples/<example>`` exits 0 talking to the running services."""
    env = dict(
        os.environ,
        AUTH_ADDR=platform.auth,
        PROJECT_ADDR=platform.project,
        BILLING_ADDR=platform.billing,
        NOTIFICATION_ADDR=platform.notification,
        ANALYTICS_ADDR=platform.analytics,
    )
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
