"""Prometheus and promtool for the observability tests: found on PATH, else installed once with
scripts/install_observability_tools.sh (Debian's package); missing, a test skips (fails under
CI=true). ``running_prometheus`` runs a real Prometheus in a temporary folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from tests.requirements import requirement_missing
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install_observability_tools.sh"
OBSERVABILITY = REPO / "k8s" / "components" / "observability"
RULES = OBSERVABILITY / "rules"
DASHBOARDS = OBSERVABILITY / "dashboards"


@cache
def _install() -> str:
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
    )
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


def tool(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``, installing them once if missing."""
    found = shutil.which(name)
    if found is None:
        log = _install()
        found = shutil.which(name)
        if found is None:
            requirement_missing(f"{name} is missing; {INSTALL_SCRIPT.name} said:\n{log}")
    return found


class Prometheus:
    def __init__(self, address: str) -> None:
        self.address = address

    def get(self, path: str, **params: str) -> Any:
        url = f"http://{self.address}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.loads(reply.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now; raises on a query Prometheus refuses."""
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def scraped_everything(self, jobs: set[str]) -> bool:
        targets = self.get("/api/v1/targets")["data"]["activeTargets"]
        return bool(targets) and all(
            t["health"] == "up" for t in targets if t["labels"]["job"] in jobs
        )


@contextmanager
def running_prometheus(
    folder: Path, targets: dict[str, str], *, interval: str = "1s"
) -> Iterator[Prometheus]:
    """A real Prometheus scraping ``targets`` (service name -> host:port) as job "zoptal", with
    the platform's rule files loaded, in ``folder``; stopped on exit."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(RULES / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "zoptal",
                "static_configs": [
                    {"targets": [address], "labels": {"service": name}}
                    for name, address in targets.items()
                ],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        server = Prometheus(address)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/-/ready", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "Prometheus did not start:\n" + (folder / "prometheus.log").read_text()
                    ) from None
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
