"""Private PostgreSQL and Redis servers that fault tests may stop and restart at will.

The machine's shared PostgreSQL (5432) and Redis (6379) serve other engineers' tests, so a fault
test never touches them: it runs its own ``initdb`` cluster and its own ``redis-server`` on free
ports under a temporary folder, and stops them for real (the processes go away, connections
drop, new connections are refused), then starts them again on the same port with the same data.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support import free_port

__all__ = ["PrivatePostgres", "PrivateRedis", "free_port", "wait_for_port"]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, *, open_: bool, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while port_open(port) != open_:
        if time.monotonic() > deadline:
            state = "accept" if open_ else "stop accepting"
            raise RuntimeError(f"{what} did not {state} connections on {port} within {within} s")
        time.sleep(0.05)


def _postgres_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found (install the PostgreSQL server binaries)")
    return found


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (trust auth, no fsync) on a free port of 127.0.0.1.

    ``initdb`` refuses to run as root, so as root every server command runs as the ``postgres``
    system user through ``runuser``; the folder is handed to that user first.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres")

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_user, *argv], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(
            _postgres_bin("initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.start()

    def start(self) -> None:
        if port_open(self.port):
            return  # already running
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            _postgres_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "start",
        )
        wait_for_port(self.port, open_=True, within=10, what="PostgreSQL")

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: every session is terminated, new connections refused."""
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        wait_for_port(self.port, open_=False, within=10, what="PostgreSQL")

    def create_database(self, name: str) -> str:
        """Create ``name``; its ``postgresql+asyncpg`` URL."""
        subprocess.run(
            [
                _postgres_bin("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def dsn(self, name: str) -> str:
        """A plain libpq/asyncpg DSN for reading a service's tables directly."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(
                _postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """``redis-server`` without persistence on a free port; ``stop`` and ``start`` are real."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = (self.root / "redis.log").open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        wait_for_port(self.port, open_=True, within=10, what="Redis")

    def stop(self) -> None:
        """SIGTERM the server we started and wait for it: clients see their connections drop."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        wait_for_port(self.port, open_=False, within=10, what="Redis")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
