"""The Node.js client in examples/node walks the user journey against the embedded platform.

It is built from protos/ alone (grpc-js + proto-loader), so it proves that a client in another
language can use the platform from the protos and docs/clients.md: metadata, int64 and Timestamp
mapping, enum names, idempotency keys, and the google.rpc error details it decodes itself.
Needs ``node`` and ``npm`` (``scripts/ci_node.sh`` installs them in CI): skipped without them,
failed instead under ``CI=true``. ``npm ci`` installs the pinned packages from package-lock.json,
from npm's cache when it has them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.e2e.platform import REPO_ROOT, EmbeddedPlatform
from tests.requirements import requirement_missing
from tests.support import free_port

pytestmark = pytest.mark.e2e

EXAMPLE = REPO_ROOT / "examples" / "node"
NPM_CI_TIMEOUT_SECONDS = 240
JOURNEY_TIMEOUT_SECONDS = 120


def _run(
    command: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def node() -> str:
    """``node``, once ``npm ci`` has installed examples/node's pinned packages. Failing to fetch
    them is a missing requirement (an offline machine with a cold npm cache)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        requirement_missing("node and npm are needed for examples/node (scripts/ci_node.sh)")
    done = _run(
        [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
        NPM_CI_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        requirement_missing(f"npm ci in examples/node failed:\n{done.stdout}{done.stderr}")
    return node


def test_the_node_journey_runs_against_the_platform(
    embedded_platform: EmbeddedPlatform, node: str
) -> None:
    """``node journey.mjs`` exits 0, with the operator's part (the platform's admin) included."""
    platform = embedded_platform
    env = dict(
        os.environ,
        **platform.client_env(),
        AUTH_BOOTSTRAP_ADMIN_EMAIL=platform.admin_email,
        AUTH_BOOTSTRAP_ADMIN_PASSWORD=platform.admin_password,
    )
    result = _run([node, "journey.mjs"], JOURNEY_TIMEOUT_SECONDS, env)
    transcript = result.stdout
    assert result.returncode == 0, (
        f"journey.mjs exited {result.returncode}\nstdout:\n{transcript[-4000:]}\n"
        f"stderr:\n{result.stderr[-3000:]}\nplatform:\n{platform.text()[-3000:]}"
    )
    # Every part ran: none was skipped, and each expected error was decoded from its details.
    for step, outcome in (
        ("project.CreateProject (same request_id)", "ok"),
        ("analytics.GetAnalytics (admin)", "ok"),
        ("notification.GetNotificationHistory", "ok"),
        ("project.CreateProject (bad input)", "err INVALID_ARGUMENT"),
        ("project.GetProject (unknown id)", "err NOT_FOUND"),
        ("analytics.GetAnalytics (as a user)", "err PERMISSION_DENIED"),
        ("auth.ValidateToken (revoked caller)", "err UNAUTHENTICATED"),
    ):
        kind, _, code = outcome.partition(" ")
        found = re.search(rf"^{kind} +{re.escape(step)} +{code}", transcript, re.MULTILINE)
        assert found, f"{step}: no {outcome} in\n{transcript}"
    assert "journey complete" in transcript
    assert "violation name:" in transcript
    assert "retry_delay=" in transcript
    assert "retry-after=" in transcript
    assert "skipped" not in transcript


def test_the_node_journey_fails_on_an_unexpected_status(
    embedded_platform: EmbeddedPlatform, node: str
) -> None:
    """A service that does not answer ends the journey with a non-zero exit, not a pass."""
    env = {
        **os.environ,
        **embedded_platform.client_env(),
        "BILLING_ADDR": f"127.0.0.1:{free_port()}",
    }
    result = _run([node, "journey.mjs"], JOURNEY_TIMEOUT_SECONDS, env)
    assert result.returncode != 0, result.stdout
    assert "FAIL billing.GetUserSubscription: UNAVAILABLE" in result.stdout, result.stdout


def test_the_status_decoder(node: str) -> None:
    """``node --test``: the google.rpc details decoder on hand-made trailers."""
    done = _run([node, "--test", "status.test.mjs"], JOURNEY_TIMEOUT_SECONDS)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
