"""The load generator against the embedded platform: a short run passes its threshold, and a
run against nothing fails it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.commands import operator_credentials, platform_env, run_module
from tests.e2e.journey import Stubs, open_stubs
from tests.e2e.platform import EmbeddedPlatform
from tests.support import free_port

pytestmark = pytest.mark.e2e

# One RPC of each service that the default mix reaches in a few seconds.
ONE_PER_SERVICE = {
    "auth": "RegisterUser",
    "project": "CreateProject",
    "billing": "GetUserSubscription",
    "notification": "SendEmail",
    "analytics": "TrackEvent",
}


@pytest.fixture
def stubs(embedded_platform: EmbeddedPlatform) -> Iterator[Stubs]:
    with open_stubs(embedded_platform) as opened:
        yield opened


def test_a_short_run_passes_and_cleans_up(
    embedded_platform: EmbeddedPlatform, stubs: Stubs, tmp_path: Path
) -> None:
    credentials = tmp_path / "operator" / "credentials.json"
    operator_credentials(
        embedded_platform, stubs, ["analytics:read", "notification:send"], credentials
    )
    env = {
        **platform_env(embedded_platform, tmp_path),
        "ZOPTAL_SERVICE_CREDENTIALS": str(credentials),
    }
    done = run_module(
        "zoptal_loadgen",
        [
            "--duration", "5", "--rate", "4", "--users", "3", "--min-success", "0.99",
            "--mix", "browse=3,project=1,events=1,session=1,operator=1", "--output", "json",
        ],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = done.json()
    assert report["passed"] is True
    assert report["overall"]["success_rate"] >= 0.99
    for summary in (report["overall"], *report["rpcs"].values()):
        assert summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"]
    missing = {svc: rpc for svc, rpc in ONE_PER_SERVICE.items() if rpc not in report["rpcs"]}
    assert not missing, report["rpcs"].keys()
    # Nothing is left behind: every project made is deleted, every user signed out.
    assert report["rpcs"]["DeleteProject"]["calls"] == report["rpcs"]["CreateProject"]["calls"]
    assert report["rpcs"]["RevokeToken"]["calls"] >= 3


def test_a_dead_platform_fails_the_threshold(
    embedded_platform: EmbeddedPlatform, tmp_path: Path
) -> None:
    port = free_port()
    addresses = [f"--addr={svc}=127.0.0.1:{port}" for svc in ONE_PER_SERVICE]
    done = run_module(
        "zoptal_loadgen",
        ["--duration", "2", "--rate", "2", "--timeout", "2", "--min-success", "0.5",
         "--output", "json", *addresses],
        platform_env(embedded_platform, tmp_path),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    report = done.json()
    assert report["passed"] is False
    assert report["overall"]["calls"] > 0
    assert set(report["overall"]["failures"]) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
