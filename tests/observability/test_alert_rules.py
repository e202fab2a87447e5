"""The Prometheus rules: generated from deploy/observability/ and in sync with it, valid for
promtool, proven by promtool unit tests to fire and stay quiet as intended, and each alert
labelled, described and pointing at a runbook page that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.tools import REPO, RULES, tool

RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*.test.yml"))
RUNBOOKS = REPO / "docs" / "runbooks"
SEVERITIES = {"page", "ticket", "warning"}


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_generated_files_match_their_sources() -> None:
    """k8s/components/observability/ is what deploy/observability/generate.py writes."""
    done = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "observability" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "rules", *map(str, sorted(RULES.glob("*.yml")))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    done = subprocess.run(
        [tool("promtool"), "test", "rules", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_rule_file_is_refused(tmp_path: Path) -> None:
    """The check can fail: an expression that does not parse."""
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n- name: x\n  rules:\n  - alert: X\n    expr: rate(up[5m]\n")
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(broken)], capture_output=True, timeout=60
    )
    assert done.returncode != 0


def test_every_alert_fires_in_a_unit_test() -> None:
    """Each alert has a promtool test case in which it fires (a non-empty exp_alerts)."""
    fired = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alerts()} <= fired


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_every_alert_is_labelled_described_and_has_a_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"docs/runbooks/{rule['alert']}.md"
    page = REPO / annotations["runbook_url"]
    assert page.is_file(), f"{page} is missing"
    assert page.read_text().startswith(f"# {rule['alert']} ({rule['labels']['severity']})")


def test_every_runbook_page_belongs_to_an_alert() -> None:
    names = {rule["alert"] for rule in alerts()}
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == names
    index = (RUNBOOKS / "README.md").read_text()
    assert set(re.findall(r"\| (Zoptal\w+) \|", index)) == names
