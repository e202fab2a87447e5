"""The platform as real processes on private stores, with handles to kill, stop and restart each.

Every service runs as ``python -m zoptal_<svc>`` (after ``python -m zoptal_<svc> migrate``) with
the environment of docs/conventions.md, on free ports of 127.0.0.1: Auth, Project, two Billing
replicas (Project's ``BILLING_ADDR`` lists both), Notification with its Celery worker (Redis
broker, as in compose), and Analytics. Module names, health service names and ``<SVC>_ADDR``
variables come from the embedded launcher's catalogue, so this harness and ``make run`` agree.

Each platform service has its own identity, provisioned as an install's is: after the
migrations ``python -m zoptal_auth service-identity ensure`` runs with Auth's environment and
writes one credential file per service, which that service's processes get as
``SERVICE_CREDENTIALS_FILE`` (both Billing replicas share Billing's). Auth bootstraps an admin
with a password made for this run; the tests' operator tool is a service account it creates.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from zoptal.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.billing.v1 import billing_pb2, billing_pb2_grpc
from zoptal.notification.v1 import notification_pb2, notification_pb2_grpc
from zoptal.project.v1 import project_pb2, project_pb2_grpc
from zoptal_auth.service_identity import credentials_path
from zoptal_platform.catalogue import SERVICES, ServiceSpec

from tests.faults.operator import Metadata, Operator
from tests.faults.stores import PrivatePostgres, PrivateRedis
from tests.support import free_port

__all__ = ["Cluster", "ServiceProcess"]

SPECS: dict[str, ServiceSpec] = {spec.name: spec for spec in SERVICES}
READY_SECONDS = 60.0
# A call each service authenticates (any answer but UNAVAILABLE, UNAUTHENTICATED or a timeout
# shows the service has its own token and has synced Auth's revocation list once).
AUTHENTICATED_PROBES: dict[str, Callable[[grpc.Channel], Callable[..., object]]] = {
    "auth": lambda ch: partial(
        auth_pb2_grpc.AuthServiceStub(ch).GetUser, auth_pb2.GetUserRequest(user_id="nobody")
    ),
    "project": lambda ch: partial(
        project_pb2_grpc.ProjectServiceStub(ch).GetProject,
        project_pb2.GetProjectRequest(project_id="nothing"),
    ),
    "billing": lambda ch: partial(
        billing_pb2_grpc.BillingServiceStub(ch).GetSubscriptionPlans,
        billing_pb2.GetSubscriptionPlansRequest(),
    ),
    "notification": lambda ch: partial(
        notification_pb2_grpc.NotificationServiceStub(ch).GetNotification,
        notification_pb2.GetNotificationRequest(notification_id="nothing"),
    ),
    "analytics": lambda ch: partial(
        analytics_pb2_grpc.AnalyticsServiceStub(ch).GetRealTimeAnalytics,
        analytics_pb2.GetRealTimeAnalyticsRequest(window_minutes=5),
    ),
}
NOT_READY = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
IDENTITY_HOLDERS = ("project", "billing", "notification", "analytics")
"""The services that call peers, each with its own credential (Auth issues, it needs none)."""


@dataclass
class ServiceProcess:
    """One running process (a service replica or the Celery worker) and how to start it again."""

    label: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    metrics_port: int | None = None
    health_service: str = ""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as sink:
            sink.write(f"\n===== start #{self.starts + 1} of {self.label} =====\n".encode())
            sink.flush()
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a worker's pool children die with it
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hook, no goodbye to any peer."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM to the service process itself, as kubelet or ``docker stop`` sends it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, within: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.label} did not exit within {within} s") from None

    def terminate_group(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.terminate_group()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def health(self, service: str | None = None, timeout: float = 1.0) -> int | None:
        """The grpc.health.v1 status for ``service`` (default: the whole server), or None."""
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(
                    health_pb2.HealthCheckRequest(service="" if service is None else service),
                    timeout=timeout,
                )
            except grpc.RpcError:
                return None
            return int(reply.status)

    def wait_serving(self, within: float = READY_SECONDS) -> None:
        deadline = time.monotonic() + within
        while self.health() != health_pb2.HealthCheckResponse.SERVING:
            if not self.alive():
                assert self.process is not None
                code = self.process.returncode  # negative: killed by that signal
                raise AssertionError(f"{self.label} exited ({code}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.label} not SERVING within {within} s:\n{self.tail()}")
            time.sleep(0.1)

    def wait_authenticating(self, metadata: Metadata, within: float = READY_SECONDS) -> None:
        """Until an authenticated call is admitted: SERVING comes before the service holds its
        own token and has synced Auth's revocation list, and until then every authenticated
        call waits (and may fail UNAVAILABLE), which a test breaking Redis or PostgreSQL right
        away would mistake for the fault's doing."""
        service = self.label.split("-")[0]
        deadline = time.monotonic() + within
        code: grpc.StatusCode | None = None
        with grpc.insecure_channel(self.address) as channel:
            probe = AUTHENTICATED_PROBES[service](channel)
            while True:
                try:
                    probe(metadata=metadata, timeout=10)
                    return
                except grpc.RpcError as error:
                    code = error.code()  # type: ignore[attr-defined]
                    if code not in NOT_READY:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{self.label} admitted no authenticated call within {within} s "
                        f"(last {code}):\n{self.tail()}"
                    )
                time.sleep(0.2)

    def answered_ok(self, method: str) -> int:
        """Calls to ``method`` (e.g. ``RecordUsage``) this process has answered OK since it
        last started, by its own ``/metrics``."""
        assert self.metrics_port is not None, f"{self.label} serves no metrics"
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as reply:
            text = reply.read().decode()
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "grpc_server_handled_total"
                and sample.labels.get("grpc_method") == method
                and sample.labels.get("grpc_code") == "OK"
            )
        )

    def restart(self) -> None:
        """Start again on the same port (after a kill or a SIGTERM) and wait until SERVING."""
        if self.alive():
            self.kill()
        self.start()
        if self.port is not None:
            self.wait_serving()

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    """All processes, keyed by label: auth, project, billing-a, billing-b, notification,
    analytics, worker."""

    root: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    smtp_port: int
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    auth_http_port: int = 0
    admin_email: str = field(default_factory=lambda: f"admin-{secrets.token_hex(4)}@example.com")
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    operator: Operator | None = None
    """The operator's service account (``start`` creates it once Auth serves)."""

    @property
    def identities_dir(self) -> Path:
        return self.root / "identities"

    def __getitem__(self, label: str) -> ServiceProcess:
        return self.processes[label]

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.auth_http_port}/.well-known/jwks.json"

    def address_of(self, service: str) -> tuple[str, ...]:
        """Replica addresses of a service (``billing`` has two)."""
        return tuple(
            proc.address
            for label, proc in self.processes.items()
            if proc.port is not None and label.split("-")[0] == service
        )

    def replicas(self) -> Iterator[ServiceProcess]:
        return (proc for proc in self.processes.values() if proc.port is not None)

    # -- building -------------------------------------------------------------------------

    def environment(self, service: str, database: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(
                ("CELERY_", "DATABASE_", "REDIS_", "SMTP_", "OTEL_", "GRPC_", "AUTH_BOOTSTRAP_")
            )
            and not key.endswith("_ADDR")
            and key != "SERVICE_CREDENTIALS_FILE"
        }
        env.update(
            ZOPTAL_ENV="development",
            GRPC_HOST="127.0.0.1",
            METRICS_PORT="0",
            DATA_DIR=str(self.root / "data" / service),
            DATABASE_URL=self.postgres.url(database),
            REDIS_URL=self.redis.url,
            CELERY_BROKER_URL=f"redis://127.0.0.1:{self.redis.port}/1",
            AUTH_JWKS_URL=self.jwks_url,
            AUTH_HTTP_PORT=str(self.auth_http_port),
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            # Dependency checks run often, so a database outage shows in health within a second.
            HEALTH_CHECK_INTERVAL_SECONDS="0.5",
            # A second of NOT_SERVING before the server refuses calls: long enough for a
            # client's health watch to see it, as Kubernetes' few seconds are for kubelet.
            SHUTDOWN_DRAIN_SECONDS="1",
            SHUTDOWN_GRACE_SECONDS="10",
            RATE_LIMIT_MAX_REQUESTS="1000000",
            # Auth refuses calls when its limiter cannot reach Redis; every other service lets
            # them through (the default). The Redis test proves each follows its setting.
            RATE_LIMIT_FAIL_MODE="closed" if service == "auth" else "open",
            ARGON2_TIME_COST="1",
            ARGON2_MEMORY_KIB="1024",
            ARGON2_PARALLELISM="1",
            USAGE_OUTBOX_POLL_SECONDS="0.5",
            # Creates stranded by a database outage are swept after 10 s, not 300 s, so a test
            # can wait for the books to balance (longer than any create deadline used here).
            STALE_CREATE_SECONDS="10",
            NOTICE_POLL_SECONDS="0.5",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.smtp_port),
            SMTP_TIMEOUT_SECONDS="2",
            WEBHOOK_TIMEOUT_SECONDS="1",
            DELIVERY_LEASE_SECONDS="4",
            DELIVERY_MAX_ATTEMPTS="5",
            RETRY_BACKOFF_SECONDS="0.2",
            RETRY_BACKOFF_MAX_SECONDS="1",
            OUTBOX_RELAY_INTERVAL_SECONDS="0.3",
            OUTBOX_DISPATCH_GRACE_SECONDS="1",
            OUTBOX_REDISPATCH_AFTER_SECONDS="5",
        )
        if service in IDENTITY_HOLDERS:
            env["SERVICE_CREDENTIALS_FILE"] = str(credentials_path(self.identities_dir, service))
        if service == "auth":
            env["AUTH_BOOTSTRAP_ADMIN_EMAIL"] = self.admin_email
            env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"] = self.admin_password
        (self.root / "data" / service).mkdir(parents=True, exist_ok=True)
        return env

    def add(self, label: str, service: str) -> ServiceProcess:
        spec = SPECS[service]
        process = ServiceProcess(
            label=label,
            argv=[sys.executable, "-m", spec.module],
            env=self.environment(service, service),
            log=self.root / f"{label}.log",
            port=free_port(),
            # Its own /metrics, so a test can ask a replica what it served (see answered_ok).
            metrics_port=free_port(),
            health_service=spec.full_service_name,
        )
        process.env["GRPC_PORT"] = str(process.port)
        process.env["METRICS_PORT"] = str(process.metrics_port)
        self.processes[label] = process
        return process

    def wire_peers(self) -> None:
        """Every process learns every peer's replicas (``<SVC>_ADDR``)."""
        for proc in self.processes.values():
            for service in SPECS:
                addresses = self.address_of(service)
                if addresses:
                    proc.env[SPECS[service].addr_variable] = ",".join(addresses)

    def migrate(self) -> None:
        """``python -m zoptal_<svc> migrate`` for every service, side by side."""
        running = {}
        for service in SPECS:
            self.postgres.create_database(service)
            running[service] = subprocess.Popen(
                [sys.executable, "-m", SPECS[service].module, "migrate"],
                env=self.environment(service, service),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        for service, process in running.items():
            output, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"migrating {service} failed:\n{output}")
        self.ensure_identities()

    def ensure_identities(self) -> None:
        """``python -m zoptal_auth service-identity ensure`` with Auth's environment, as the
        launcher runs it: one credential file per service under ``identities_dir``."""
        command = [sys.executable, "-m", SPECS["auth"].module, "service-identity", "ensure"]
        ensured = subprocess.run(
            [*command, "--credentials-dir", str(self.identities_dir), *IDENTITY_HOLDERS],
            env=self.environment("auth", "auth"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if ensured.returncode != 0:
            raise RuntimeError(f"service-identity ensure failed:\n{ensured.stdout}{ensured.stderr}")

    def start(self) -> None:
        """Auth first, then the rest at once, as the platform launcher and compose order them
        (the others sync Auth's revocation list from their first moment)."""
        auth = self.processes["auth"]
        auth.start()
        auth.wait_serving()
        for proc in self.processes.values():
            if proc is not auth:
                proc.start()
        for proc in self.replicas():
            proc.wait_serving()
        if self.operator is None:
            self.operator = Operator.created_by_admin(
                auth.address, self.admin_email, self.admin_password
            )
        self.wait_authenticating()

    def wait_authenticating(self) -> None:
        """Every replica admits an authenticated call (``ServiceProcess.wait_authenticating``)."""
        assert self.operator is not None
        for proc in self.replicas():
            proc.wait_authenticating(self.operator.metadata)

    def stop(self) -> None:
        """SIGTERM everyone at once, then wait (SIGKILL what outlives the wait)."""
        running = [proc for proc in self.processes.values() if proc.alive()]
        for proc in running:
            proc.terminate_group()
        for proc in running:
            proc.stop()


def build_cluster(
    root: Path, postgres: PrivatePostgres, redis: PrivateRedis, smtp_port: int
) -> Cluster:
    cluster = Cluster(root, postgres, redis, smtp_port, auth_http_port=free_port())
    cluster.add("auth", "auth")
    cluster.add("project", "project")
    cluster.add("billing-a", "billing")
    cluster.add("billing-b", "billing")
    cluster.add("notification", "notification")
    cluster.add("analytics", "analytics")
    worker = ServiceProcess(
        label="worker",
        argv=[
            sys.executable,
            "-m",
            "celery",
            "-A",
            "zoptal_notification.worker",
            "worker",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            "fault-worker@%h",
        ],
        # One delivery at a time: the kill tests hold one at the SMTP server and expect it
        # to be the only one in flight when the worker dies.
        env={**cluster.environment("notification", "notification"), "WORKER_THREADS": "1"},
        log=root / "worker.log",
    )
    cluster.processes["worker"] = worker
    cluster.wire_peers()
    cluster.migrate()
    return cluster
