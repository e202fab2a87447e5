"""One running platform for the whole fuzz session, with real users and real data in it.

Alice owns a project, has a subscription, a notification and an analytics event; Bob is another
ordinary user; the admin is Auth's bootstrap admin. Their tokens come from Auth (RegisterUser,
Login), never from a hand-made JWT, so every attack below starts from the genuine article.
Service tokens come from Auth too (IssueServiceToken): a platform service's own credential from
the data folder (``mesh.as_service("billing")``), or the operator's service account, which the
admin created holding every permission (``mesh.service_metadata``).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from meshcore.jwt import SigningKey
from zoptal.analytics.v1 import analytics_pb2
from zoptal.auth.v1 import auth_pb2
from zoptal.notification.v1 import notification_pb2
from zoptal.project.v1 import project_pb2

from tests.fuzz.calls import Metadata, bearer, call, service_header
from tests.fuzz.catalogue import ALL_RPCS, SERVICE_MODULES, Rpc
from tests.fuzz.tokens import ALL_SERVICE_PERMISSIONS
from tests.identities import credential_of
from tests.mesh import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    BackgroundLoop,
    InProcessMesh,
    serve_mesh,
)
from tests.support import postgres_database

RENEW_BEFORE_SECONDS = 60.0
"""A cached service token is re-issued once it has less than this left (tokens live 300 s)."""


@dataclass(frozen=True)
class Identity:
    user_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)

    @property
    def metadata(self) -> Metadata:
        return bearer(self.access_token)


@dataclass(frozen=True)
class ClientCredentials:
    """A service account's client id and secret (an operator's, or one read from a file)."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(repr=False)
class Mesh:
    channels: dict[str, grpc.Channel]
    running: InProcessMesh
    admin: Identity
    alice: Identity
    bob: Identity
    alice_project_id: str = ""
    alice_notification_id: str = ""
    operator: ClientCredentials | None = None
    """The admin-created service account holding every permission (set up by ``_populate``)."""
    _issued: dict[ClientCredentials, tuple[str, float]] = field(default_factory=dict)

    @property
    def addresses(self) -> dict[str, str]:
        """``host:port`` by service, for clients that are not grpc channels."""
        return self.running.addresses

    @property
    def jwks_url(self) -> str:
        return self.running.jwks_url

    @property
    def signing_key(self) -> SigningKey:
        return self.running.signing_key

    def issue(self, credentials: ClientCredentials) -> str:
        """Auth's IssueServiceToken for ``credentials``; cached until it nears expiry."""
        cached = self._issued.get(credentials)
        if cached is not None and cached[1] - time.time() > RENEW_BEFORE_SECONDS:
            return cached[0]
        reply: Any = self.ok(
            "auth",
            "IssueServiceToken",
            auth_pb2.IssueServiceTokenRequest(
                client_id=credentials.client_id, client_secret=credentials.client_secret
            ),
            (),
        )
        self._issued[credentials] = (reply.access_token, float(reply.expires_at.seconds))
        return str(reply.access_token)

    def credentials_of(self, service: str) -> ClientCredentials:
        """A platform service's own credential, read from its file in the data folder."""
        credential = credential_of(self.running.identities_dir, service)
        return ClientCredentials(credential.client_id, credential.client_secret)

    def service_token(self, service: str) -> str:
        """The token a platform service holds: issued for its own credential (all its grants)."""
        return self.issue(self.credentials_of(service))

    def as_service(self, service: str) -> Metadata:
        return service_header(self.service_token(service))

    @property
    def service_metadata(self) -> Metadata:
        """The operator's service token: every permission there is, granted by the admin."""
        assert self.operator is not None, "the operator account is made by _populate"
        return service_header(self.issue(self.operator))

    def create_service_account(self, name: str, permissions: tuple[str, ...]) -> ClientCredentials:
        """A service account the admin creates (CreateServiceAccount), as an operator would."""
        created: Any = self.ok(
            "auth",
            "CreateServiceAccount",
            auth_pb2.CreateServiceAccountRequest(name=name, permissions=list(permissions)),
            self.admin.metadata,
        )
        return ClientCredentials(created.service_account.client_id, created.client_secret)

    def __repr__(self) -> str:  # hypothesis prints fixtures: keep tokens out of reports
        return f"Mesh(alice={self.alice.user_id}, bob={self.bob.user_id})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' pretty printer
        printer.text(repr(self))

    def channel(self, rpc: Rpc) -> grpc.Channel:
        return self.channels[rpc.service]

    @property
    def known_ids(self) -> list[str]:
        """Real ids, so generated requests sometimes name things that exist."""
        return [
            self.alice.user_id,
            self.bob.user_id,
            self.admin.user_id,
            self.alice_project_id,
            self.alice_notification_id,
            "free",
            "pro",
        ]

    def ok(self, service: str, method: str, request: object, metadata: Metadata) -> object:
        """Call and demand OK (set-up steps, not the behaviour under test)."""
        rpc = next(r for r in ALL_RPCS if r.service == service and r.method.name == method)
        outcome = call(self.channels[service], rpc, request, metadata)
        assert outcome.code == grpc.StatusCode.OK, f"{service}.{method}: {outcome}"
        return outcome.response


def _login(mesh_channels: dict[str, grpc.Channel], email: str, password: str) -> Identity:
    rpc = next(r for r in ALL_RPCS if r.service == "auth" and r.method.name == "Login")
    outcome = call(
        mesh_channels["auth"], rpc, auth_pb2.LoginRequest(email=email, password=password)
    )
    assert outcome.code == grpc.StatusCode.OK, outcome
    login = outcome.response
    return Identity(login.user.id, login.access_token, login.refresh_token)


def _register(channels: dict[str, grpc.Channel], email: str) -> Identity:
    rpc = next(r for r in ALL_RPCS if r.service == "auth" and r.method.name == "RegisterUser")
    outcome = call(
        channels["auth"], rpc, auth_pb2.RegisterUserRequest(email=email, password=PASSWORD)
    )
    assert outcome.code == grpc.StatusCode.OK, outcome
    return _login(channels, email, PASSWORD)


@pytest.fixture(scope="session")
def background_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    try:
        yield loop
    finally:
        loop.close()


@contextlib.contextmanager
def running_mesh(
    loop: BackgroundLoop, data_dir: Path, database_urls: Mapping[str, str] | None = None
) -> Iterator[Mesh]:
    """The five services on ``loop`` (databases from ``database_urls``, else SQLite), populated."""
    running = serve_mesh(data_dir, database_urls)
    served = loop.run(running.__aenter__())
    channels = {name: grpc.insecure_channel(address) for name, address in served.addresses.items()}
    try:
        yield _populate(channels, served)
    finally:
        for channel in channels.values():
            channel.close()
        with contextlib.suppress(Exception):
            loop.run(running.__aexit__(None, None, None), timeout=60)


@pytest.fixture(scope="session")
def mesh(
    background_loop: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    with running_mesh(background_loop, tmp_path_factory.mktemp("fuzz-platform")) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_mesh(
    background_loop: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    """All five services again, each on its own fresh PostgreSQL database, as deployed."""
    with contextlib.ExitStack() as databases:
        urls = {
            svc: databases.enter_context(postgres_database(f"zoptal_fuzz_{svc}"))
            for svc in SERVICE_MODULES
        }
        with running_mesh(background_loop, tmp_path_factory.mktemp("fuzz-postgres"), urls) as mesh:
            yield mesh


def _populate(channels: dict[str, grpc.Channel], running: InProcessMesh) -> Mesh:
    admin = _login(channels, ADMIN_EMAIL, ADMIN_PASSWORD)
    alice = _register(channels, "alice@example.com")
    bob = _register(channels, "bob@example.com")
    partial = Mesh(channels, running, admin, alice, bob)
    partial.operator = partial.create_service_account(
        f"fuzz-operator-{uuid.uuid4().hex[:8]}", ALL_SERVICE_PERMISSIONS
    )
    project = partial.ok(
        "project",
        "CreateProject",
        project_pb2.CreateProjectRequest(name="alice's secret plans", request_id="fuzz-setup"),
        alice.metadata,
    )
    sent = partial.ok(
        "notification",
        "SendEmail",
        notification_pb2.SendEmailRequest(
            to="alice@example.com",
            user_id=alice.user_id,
            subject="for alice only",
            body_text="private",
            idempotency_key="fuzz-setup",
        ),
        partial.as_service("billing"),  # Billing is who sends the platform's emails
    )
    partial.ok(
        "analytics",
        "TrackEvent",
        analytics_pb2.TrackEventRequest(name="alice_private_event", user_id=alice.user_id),
        alice.metadata,
    )
    partial.alice_project_id = project.project.id  # type: ignore[attr-defined]
    partial.alice_notification_id = sent.notification_id  # type: ignore[attr-defined]
    return partial
