"""STAND-IN for prom/prometheus, for machines that cannot reach an image registry.

Not Prometheus: it reads the same --config.file, scrapes every static target of every scrape job
at the configured interval and keeps only each target's last result. On 9090:
  GET/HEAD /-/ready, /-/healthy   200
  GET /metrics                    its own scrape counts (the config's self-scrape job finds it)
  POST /-/reload                  re-read the config (--web.enable-lifecycle)
  GET /api/v1/targets             {"status": "success", "data": {"activeTargets": [...]}} with
                                  labels, scrapeUrl, health ("up"/"down"), lastError, and the
                                  number of samples of the last scrape (a stand-in extra)
Other flags are accepted and ignored. Built by scripts/build_standin_images.sh; see
deploy/standins/README.md.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

lock = threading.Lock()
targets: dict[str, dict[str, Any]] = {}
config_file = "/etc/prometheus/prometheus.yml"
wake = threading.Event()


def seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def load() -> tuple[float, list[dict[str, Any]]]:
    with open(config_file, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    interval = seconds(str((config.get("global") or {}).get("scrape_interval", "15s")))
    found = []
    for job in config.get("scrape_configs") or []:
        path = job.get("metrics_path", "/metrics")
        for group in job.get("static_configs") or []:
            for address in group.get("targets") or []:
                labels = {
                    "job": job["job_name"],
                    "instance": address,
                    **(group.get("labels") or {}),
                }
                found.append({"scrapeUrl": f"http://{address}{path}", "labels": labels})
    return interval, found


def scrape_forever() -> None:
    while True:
        interval, configured = load()
        for target in configured:
            url = target["scrapeUrl"]
            result = {**target, "health": "down", "lastError": "", "samples": 0}
            started = time.monotonic()
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310
                    text = reply.read().decode("utf-8", "replace")
                lines = [line for line in text.splitlines() if line and not line.startswith("#")]
                result.update(health="up", samples=len(lines))
            except Exception as error:
                result["lastError"] = str(error)
            result["lastScrape"] = datetime.now(UTC).isoformat()
            result["lastScrapeDuration"] = time.monotonic() - started
            with lock:
                targets[url] = result
        with lock:
            for url in set(targets) - {t["scrapeUrl"] for t in configured}:
                del targets[url]
        wake.wait(interval)
        wake.clear()


class Http(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.path in ("/-/ready", "/-/healthy"):
            self._send(200, b"Prometheus stand-in is Ready.\n", "text/plain")
        elif self.path == "/metrics":
            with lock:
                up = sum(1 for t in targets.values() if t["health"] == "up")
                lines = [
                    "# TYPE standin_targets gauge",
                    f"standin_targets {len(targets)}",
                    "# TYPE standin_targets_up gauge",
                    f"standin_targets_up {up}",
                ]
            self._send(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")
        elif self.path.startswith("/api/v1/targets"):
            with lock:
                active = sorted(targets.values(), key=lambda t: t["scrapeUrl"])
            body = {"status": "success", "data": {"activeTargets": active, "droppedTargets": []}}
            self._send(200, json.dumps(body).encode())
        else:
            self._send(404, b'{"status":"error"}')

    def do_POST(self) -> None:
        if self.path == "/-/reload":
            wake.set()
            self._send(200, b"", "text/plain")
        else:
            self._send(404, b'{"status":"error"}')


def main() -> None:
    global config_file
    parser = argparse.ArgumentParser(prog="prometheus (stand-in)")
    parser.add_argument("--config.file", dest="config_file", default=config_file)
    args, _ignored = parser.parse_known_args()
    config_file = args.config_file
    load()  # a broken config fails the start, as with Prometheus
    threading.Thread(target=scrape_forever, daemon=True).start()
    print(f"prometheus stand-in: {config_file}, listening on 9090", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 9090), Http).serve_forever()


if __name__ == "__main__":
    main()
