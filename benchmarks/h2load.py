"""Driving a gRPC server with h2load (nghttp2's HTTP/2 load generator), a native client that is
never the bottleneck the way a Python client is (it tops out near 2 k calls/s on 2 cores).

h2load knows HTTP/2, not gRPC: a unary call is a POST of one length-prefixed message with the
gRPC headers, and a reply counts as a success when its HTTP status is 2xx. A gRPC error is
HTTP 200 too (its status travels in the trailers), so h2load's "succeeded" proves nothing
about the replies: whoever uses this checks them some other way (a real client before and
after, and the server's own per-status call counters during).

Two modes:

* closed loop (``run``): ``-n`` calls over ``-c`` connections with ``-m`` streams each, as fast as
  the server answers: throughput;
* constant rate (``run(rate=...)``): a timing script gives every connection its send times, so the
  offered load is fixed whatever the server does: latency at a given load.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["H2Result", "ensure_h2load", "grpc_frame", "run"]

_APT_PACKAGE = "nghttp2-client"


def ensure_h2load() -> str:
    """The h2load executable, installed from Debian's ``nghttp2-client`` when missing."""
    found = shutil.which("h2load")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", _APT_PACKAGE]):
        subprocess.run([*sudo, *command], check=True, env=env, capture_output=True)
    found = shutil.which("h2load")
    if not found:
        raise RuntimeError(f"h2load is still missing after installing {_APT_PACKAGE}")
    return found


def grpc_frame(message: bytes) -> bytes:
    """One gRPC message on the wire: not compressed (0), its length (4 bytes), its bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


@dataclass(frozen=True)
class H2Result:
    calls: int
    """Replies with an HTTP 2xx status (what h2load calls succeeded)."""
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s),")
_REQUESTS = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded")
_STATUS = re.compile(r"status codes: (\d+) 2xx")


def run(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    calls: int,
    connections: int = 16,
    streams: int = 8,
    rate: float | None = None,
    timeout: float = 300.0,
) -> H2Result:
    """``calls`` POSTs of ``body`` to ``url``; at ``rate`` calls/s in total when given.

    Raises when a call failed at the HTTP/2 level (refused stream, reset, non-2xx), so that a
    result always means every reply was at least a well-formed HTTP 200.
    """
    h2load = ensure_h2load()
    with tempfile.TemporaryDirectory(prefix="h2load-") as folder:
        body_file, log_file = Path(folder) / "body", Path(folder) / "log"
        body_file.write_bytes(body)
        argv = [h2load, "-c", str(connections), "-m", str(streams), "-d", str(body_file),
                "--log-file", str(log_file)]  # fmt: skip
        for name, value in {"content-type": "application/grpc", "te": "trailers",
                            **headers}.items():  # fmt: skip
            argv += ["-H", f"{name}: {value}"]
        if rate is None:
            argv += ["-n", str(calls), url]
        else:
            argv += ["--timing-script-file", str(_timing_script(Path(folder), url, calls,
                                                                 connections, rate))]  # fmt: skip
        finished = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        output = finished.stdout + finished.stderr
        if finished.returncode != 0:
            raise RuntimeError(f"h2load failed ({finished.returncode}): {output[-1500:]}")
        latencies = _latencies_ms(log_file)
    return _result(output, latencies)


def _timing_script(folder: Path, url: str, calls: int, connections: int, rate: float) -> Path:
    """Every connection runs the whole script, so each sends at ``rate / connections``."""
    per_connection = max(calls // connections, 1)
    interval_ms = 1000.0 * connections / rate
    script = folder / "timing"
    script.write_text("".join(f"{i * interval_ms:.3f}\t{url}\n" for i in range(per_connection)))
    return script


def _latencies_ms(log_file: Path) -> list[float]:
    """Per-call latency from h2load's log (start in µs, HTTP status, duration in µs)."""
    latencies: list[float] = []
    with contextlib.suppress(OSError):
        for line in log_file.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) == 3 and fields[1].startswith("2"):
                latencies.append(int(fields[2]) / 1000.0)
    return sorted(latencies)


def _result(output: str, latencies: list[float]) -> H2Result:
    finished, requests = _FINISHED.search(output), _REQUESTS.search(output)
    status = _STATUS.search(output)
    if finished is None or requests is None or status is None:
        raise RuntimeError(f"unexpected h2load output: {output[-1500:]}")
    total, done, succeeded = (int(value) for value in requests.groups())
    ok = int(status.group(1))
    if not (total == done == succeeded == ok) or not latencies:
        raise RuntimeError(f"h2load: {total} calls, {done} done, {succeeded} 2xx: {output[-800:]}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[finished.group(2)]
    return H2Result(
        calls=ok,
        seconds=float(finished.group(1)) * scale,
        p50_ms=latencies[len(latencies) // 2],
        p99_ms=latencies[min(int(len(latencies) * 0.99), len(latencies) - 1)],
    )
