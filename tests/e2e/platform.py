"""Starts and stops the whole platform exactly as the README says (``make run``).

The platform runs on shifted ports (``ZOPTAL_PORT_OFFSET``) in a temporary data folder, so these
tests can run beside a developer's own ``make run``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT_OFFSET = 2000
POSTGRES_PORT_OFFSET = 3000
"""The second platform, on PostgreSQL and Redis, runs beside the first on these ports."""
START_TIMEOUT_SECONDS = 240.0


@dataclass
class EmbeddedPlatform:
    process: subprocess.Popen[str]
    data_dir: Path
    port_offset: int
    extra_env: dict[str, str] = field(default_factory=dict)
    """What this run adds to the environment (for example ``ZOPTAL_POSTGRES_URL``)."""
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

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

    def client_env(self) -> dict[str, str]:
        """``<SVC>_ADDR`` for every service: where a client (the examples) finds this platform."""
        return {
            "AUTH_ADDR": self.auth,
            "PROJECT_ADDR": self.project,
            "BILLING_ADDR": self.billing,
            "NOTIFICATION_ADDR": self.notification,
            "ANALYTICS_ADDR": self.analytics,
        }

    @property
    def admin_email(self) -> str:
        """The operator Auth bootstraps (``AUTH_BOOTSTRAP_ADMIN_EMAIL``), made for this run."""
        return self.extra_env["AUTH_BOOTSTRAP_ADMIN_EMAIL"]

    @property
    def admin_password(self) -> str:
        return self.extra_env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"]

    @property
    def identities_dir(self) -> Path:
        """Where ``make run`` keeps each service's own credential."""
        return self.data_dir / "identities"

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{8080 + self.port_offset}/.well-known/jwks.json"

    def text(self) -> str:
        return "".join(self.output)


def launch_platform(
    data_dir: Path, port_offset: int, extra_env: dict[str, str] | None = None
) -> EmbeddedPlatform:
    """``make run`` in ``data_dir`` on shifted ports; returns once it is SERVING.

    Auth bootstraps an admin whose password is made for this run (an operator's account, which
    creates the service accounts the tests read analytics with).
    Raises ``PlatformDidNotStart`` (after stopping it) with the output when it never got there.
    """
    extra_env = {
        "AUTH_BOOTSTRAP_ADMIN_EMAIL": f"operator-{secrets.token_hex(4)}@example.com",
        "AUTH_BOOTSTRAP_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        **(extra_env or {}),
    }
    env = dict(
        os.environ,
        ZOPTAL_PORT_OFFSET=str(port_offset),
        ZOPTAL_DATA_DIR=str(data_dir),
        **extra_env,
    )
    process = subprocess.Popen(
        ["make", "run"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so Ctrl-C can be imitated exactly
    )
    platform = EmbeddedPlatform(process, data_dir, port_offset, extra_env)
    ready = threading.Event()
    platform.reader = threading.Thread(
        target=pump_output, args=(process.stdout, platform.output, ready)
    )
    platform.reader.start()
    ready.wait(START_TIMEOUT_SECONDS)
    if "is SERVING" not in platform.text():
        shutdown_platform(platform)
        raise PlatformDidNotStart(platform.text()[-6000:])
    return platform


def shutdown_platform(platform: EmbeddedPlatform) -> int:
    """Ctrl-C, then wait for its output to end; returns the exit code of ``make``."""
    exit_code = stop_platform(platform)
    if platform.reader is not None:
        platform.reader.join(30)
    return exit_code


class PlatformDidNotStart(RuntimeError):
    """The platform exited, or printed no SERVING banner in time (its output is attached)."""


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
