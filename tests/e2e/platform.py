"""Starts and stops the whole platform exactly as the README says (``make run``).

The platform runs on shifted ports (``ZOPTAL_PORT_OFFSET``) in a temporary data folder, so these
tests can run beside a developer's own ``make run``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT_OFFSET = 2000
START_TIMEOUT_SECONDS = 240.0


@dataclass
class EmbeddedPlatform:
    process: subprocess.Popen[str]
    data_dir: Path
    port_offset: int
    output: list[str] = field(default_factory=list)

    def address(self, port: int) -> str:
        return f"127.0.0.1:{port + self.port_offset}"

    @property
    def auth(self) -> str:
        return self.address(4000)

    @property
    def project(self) -> str:
        return self.address(4001)

    @property
    def billing(self) -> str:
        return self.address(4003)

    @property
    def notification(self) -> str:
        return self.address(4004)

    @property
    def analytics(self) -> str:
        return self.address(4005)

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{8080 + self.port_offset}/.well-known/jwks.json"

    def text(self) -> str:
        return "".join(self.output)


def pump_output(stream: object, sink: list[str], ready: threading.Event) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line)
        if "is SERVING" in line:
            ready.set()
    ready.set()  # the stream closed: let the waiter see the exit


def stop_platform(platform: EmbeddedPlatform) -> int:
    """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group."""
    if platform.process.poll() is None:
        os.killpg(platform.process.pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while platform.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if platform.process.poll() is None:
            os.killpg(platform.process.pid, signal.SIGKILL)
    return platform.process.wait()


def port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False
