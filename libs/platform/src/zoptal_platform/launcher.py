"""Runs every installed service as its own process, the way the README's run command does.

Each service is a real ``python -m zoptal_<svc>`` process on its real port, with its SQLite file
under the data folder; the launcher migrates them, starts them, waits until each reports SERVING
over grpc.health.v1, and on Ctrl-C (or SIGTERM) stops them gracefully in one go.

Everything it writes under the data folder is private (0700 folders, 0600 files, whatever the
umask): the folder holds SQLite databases with password hashes, signing keys, logs and mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from meshcore import health_probe
from meshcore.private_files import open_private, private_directory

from zoptal_platform.catalogue import (
    WORKER_METRICS_PORT,
    ServiceSpec,
    celery_worker_available,
    installed_services,
)
from zoptal_platform.stores import ExternalStores, create_databases

READY_TIMEOUT_SECONDS = 90.0
POLL_SECONDS = 0.05
"""Between health checks of starting services: short, since every check is a moment saved."""
FIRST_SERVICE = "auth"
"""Started and SERVING before the others (see ``start_all``)."""
AUTH_ONLY_PREFIX = "AUTH_BOOTSTRAP_"
"""Variables the launcher passes to Auth only (``AUTH_BOOTSTRAP_ADMIN_PASSWORD`` is a secret)."""
SMTP_SINK_PORT = 1025
STOP_TIMEOUT_SECONDS = 40.0


@dataclass(frozen=True)
class PlatformLayout:
    """Where everything lives for one run: the data folder and a port offset for every port."""

    data_dir: Path
    port_offset: int = 0
    services: tuple[ServiceSpec, ...] = field(default_factory=lambda: tuple(installed_services()))
    stores: ExternalStores = field(default_factory=ExternalStores)
    """PostgreSQL and Redis instead of SQLite (``ZOPTAL_POSTGRES_URL``, ``ZOPTAL_REDIS_URL``)."""

    @property
    def smtp_port(self) -> int:
        return SMTP_SINK_PORT + self.port_offset

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def identities_dir(self) -> Path:
        """Each service's own credential (what its settings default to in development)."""
        return self.data_dir / "identities"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def worker_metrics_port(self) -> int:
        return WORKER_METRICS_PORT + self.port_offset

    def worker_environment(self) -> dict[str, str]:
        """The Celery worker's: Notification's database and broker, its own metrics port."""
        env = self.environment(None)
        env.update(self.stores.variables("notification"))
        env["WORKER_METRICS_PORT"] = str(self.worker_metrics_port)
        return env

    def grpc_address(self, spec: ServiceSpec) -> str:
        return f"127.0.0.1:{spec.grpc_port + self.port_offset}"

    def environment(self, spec: ServiceSpec | None) -> dict[str, str]:
        """The environment every process gets, plus the ports of ``spec`` when given."""
        env = dict(os.environ)
        env.update(
            ZOPTAL_ENV=env.get("ZOPTAL_ENV", "development"),
            DATA_DIR=str(self.data_dir),
            GRPC_HOST="127.0.0.1",
            CELERY_BROKER_URL=f"sqla+sqlite:///{self.data_dir / 'celery-broker.db'}",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.smtp_port),
            PYTHONUNBUFFERED="1",
        )
        for peer in self.services:
            env[peer.addr_variable] = self.grpc_address(peer)
            for variable, port in peer.extra_ports.items():
                env[variable] = str(port + self.port_offset)
        auth_http = 8080 + self.port_offset
        env["AUTH_JWKS_URL"] = f"http://127.0.0.1:{auth_http}/.well-known/jwks.json"
        if spec is not None:
            env["GRPC_PORT"] = str(spec.grpc_port + self.port_offset)
            env["METRICS_PORT"] = str(spec.metrics_port + self.port_offset)
        if spec is None or spec.name != FIRST_SERVICE:
            # Auth's own secrets (the bootstrap admin's password) reach Auth and nothing else.
            for variable in [name for name in env if name.startswith(AUTH_ONLY_PREFIX)]:
                del env[variable]
        env.update(self.stores.variables(spec.name if spec is not None else None))
        return env


@dataclass
class RunningProcess:
    label: str
    process: asyncio.subprocess.Process
    log_path: Path


def prepare_folders(layout: PlatformLayout) -> None:
    """The data folder and the folders the launcher writes into, private (0700): created so, or
    restricted when an older run left them open. Services create theirs the same way (Auth's
    keys, the SQLite files, the Celery broker)."""
    for folder in (layout.data_dir, layout.log_dir, layout.mail_dir):
        private_directory(folder)


async def migrate_all(layout: PlatformLayout) -> None:
    """Every service's migrations, then the service identities (``python -m zoptal_platform
    migrate``; ``run`` overlaps the identities with Auth's start instead)."""
    await migrate_databases(layout)
    await ensure_identities(layout)


async def migrate_databases(layout: PlatformLayout) -> None:
    """Apply every service's migrations, all at once (each service has its own database),
    failing loudly on the first error. A database already at head costs its process a moment
    (``meshcore.migrations.is_at_head``)."""
    prepare_folders(layout)
    try:
        await create_databases(layout.stores, [spec.name for spec in layout.services])
    except (OSError, asyncpg.PostgresError) as error:
        raise PlatformError(f"creating the PostgreSQL databases failed: {error}") from error
    outcomes = await asyncio.gather(
        *(
            _run_once(f"migrating {spec.name}", [spec.module, "migrate"], layout.environment(spec))
            for spec in layout.services
        ),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def ensure_identities(layout: PlatformLayout) -> None:
    """Give every service that calls peers its own credential, generated once per data folder
    (``<data>/identities/<service>/credentials.json``) and registered in Auth's database."""
    auth = next((spec for spec in layout.services if spec.name == FIRST_SERVICE), None)
    callers = [spec.name for spec in layout.services if spec.name != FIRST_SERVICE]
    if auth is None or not callers:
        return
    command = [auth.module, "service-identity", "ensure", "--credentials-dir"]
    command += [str(layout.identities_dir), *callers]
    await _run_once("creating the service identities", command, layout.environment(auth))


async def _run_once(what: str, module_argv: list[str], env: Mapping[str, str]) -> None:
    """``python -m <module_argv>`` to completion; PlatformError with its output if it fails."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *module_argv,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise PlatformError(
            f"{what} failed (exit {process.returncode}):\n"
            + output.decode(errors="replace")[-4000:]
        )


async def _spawn(
    label: str, argv: list[str], env: Mapping[str, str], log_dir: Path
) -> RunningProcess:
    log_path = log_dir / f"{label}.log"
    log_file = os.fdopen(open_private(log_path, os.O_WRONLY | os.O_APPEND), "ab")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            # Own session: a terminal's Ctrl-C reaches only the launcher, which then stops the
            # services in a controlled way instead of all of them racing on SIGINT.
            start_new_session=True,
        )
    finally:
        log_file.close()
    return RunningProcess(label, process, log_path)


async def start_all(layout: PlatformLayout) -> list[RunningProcess]:
    """Start Auth, wait until it serves and the service identities exist, then start the
    others at once (the Celery worker is ``start_worker``'s).

    Auth goes first as compose orders it (``depends_on: auth: service_healthy``): every other
    service polls Auth's revocation list from its first moment and refuses user calls until
    that list has synced once. A first poll that finds no Auth yet trips the caller's breaker,
    so that service would start refusing calls right after the platform said SERVING.
    """
    prepare_folders(layout)
    log_dir = layout.log_dir
    first = tuple(spec for spec in layout.services if spec.name == FIRST_SERVICE)
    rest = [spec for spec in layout.services if spec.name != FIRST_SERVICE]
    running: list[RunningProcess] = []
    try:
        for spec in first:
            running.append(await _spawn_service(layout, spec, log_dir))
        # The others' credentials are made (or checked) while Auth starts: both only need
        # Auth's migrated database, and only the others need the credentials.
        await asyncio.gather(
            ensure_identities(layout), wait_until_serving(replace(layout, services=first), running)
        )
        for spec in rest:
            running.append(await _spawn_service(layout, spec, log_dir))
    except BaseException:
        await stop_all(running)
        raise
    return running


async def start_worker(layout: PlatformLayout) -> RunningProcess | None:
    """Notification's Celery worker, when Notification and Celery are installed.

    Started once the services serve: serving needs no worker (emails wait in the broker), and
    on a laptop's few cores its start (Celery, kombu, the app) would slow the services' own.
    """
    if not celery_worker_available() or all(s.name != "notification" for s in layout.services):
        return None
    argv = [
        sys.executable, "-m", "celery", "-A", "zoptal_notification.worker", "worker",
        "--loglevel", "INFO", "--hostname", "notification-worker@%h",
    ]  # fmt: skip
    # The worker is Notification's: it shares that service's database (and broker).
    return await _spawn("notification-worker", argv, layout.worker_environment(), layout.log_dir)


async def _spawn_service(
    layout: PlatformLayout, spec: ServiceSpec, log_dir: Path
) -> RunningProcess:
    argv = [sys.executable, "-m", spec.module]
    return await _spawn(spec.name, argv, layout.environment(spec), log_dir)


async def _serving(address: str) -> bool:
    # The same grpc.health.v1 check the container images use, off the event loop.
    return await asyncio.to_thread(health_probe.check, address, "", 1.0)


async def wait_until_serving(layout: PlatformLayout, running: list[RunningProcess]) -> None:
    """Poll each service's health until SERVING; fail with its log tail if it dies or stalls."""
    by_name = {item.label: item for item in running}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_SECONDS
    pending = list(layout.services)
    while pending:
        for spec in list(pending):
            item = by_name[spec.name]
            if item.process.returncode is not None:
                raise PlatformError(f"{spec.name} exited with {item.process.returncode}", item)
            if await _serving(layout.grpc_address(spec)):
                pending.remove(spec)
        if pending and loop.time() > deadline:
            raise PlatformError(
                f"{pending[0].name} did not become SERVING", by_name[pending[0].name]
            )
        if pending:
            await asyncio.sleep(POLL_SECONDS)


async def stop_all(running: list[RunningProcess]) -> None:
    """SIGTERM everyone at once (each drains in-flight calls); SIGKILL what outlives the wait."""
    for item in running:
        if item.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                item.process.send_signal(signal.SIGTERM)
    waits = [item.process.wait() for item in running]
    try:
        await asyncio.wait_for(asyncio.gather(*waits), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        for item in running:
            if item.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    item.process.kill()
        await asyncio.gather(*(item.process.wait() for item in running))


class PlatformError(RuntimeError):
    def __init__(self, message: str, process: RunningProcess | None = None) -> None:
        if process is not None:
            tail = _tail(process.log_path)
            message = f"{message}; last lines of {process.log_path}:\n{tail}"
        super().__init__(message)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
