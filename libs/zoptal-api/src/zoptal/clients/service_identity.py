"""A Zoptal service's own identity: its credential file, and the tokens Auth issues for it.

Every service that calls peers holds one credential of its own (client id and secret of its
Auth service account), generated per install by ``python -m zoptal_auth service-identity`` and
never committed. It exchanges that credential with Auth's ``IssueServiceToken`` for a short-lived
ES256 service token, which peers verify through Auth's JWKS like any user token. Revoking the
credential in Auth cuts off that one service; nothing else shares it.

The file is JSON ``{"service": ..., "client_id": ..., "client_secret": ...}``, mode 0600 in a
0700 folder, replaced atomically on rotation; it is re-read at every renewal, so a rotated
credential is used from the next renewal on without a restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshcore.client_manager import GrpcClientManager
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.errors import Unauthenticated
from meshcore.private_files import private_directory, write_atomic
from meshcore.service_token import IssuedServiceToken, ServiceTokenSource
from meshcore.settings import ServiceSettings, SettingsError

from zoptal.clients.auth import AuthServiceClient
from zoptal.clients.revocations import auth_revocation_feed

__all__ = ["PeerAccess", "ServiceCredential", "identified_clients"]

ISSUE_TIMEOUT_MS = 5_000.0


@dataclass(frozen=True)
class ServiceCredential:
    service: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"ServiceCredential(service={self.service!r}, client_id={self.client_id!r})"

    @classmethod
    def load(cls, path: Path) -> ServiceCredential:
        """Read and check a credential file; ``ValueError`` names the file and what is wrong."""
        try:
            document: Any = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ValueError(f"{path}: cannot read the service credential ({error})") from None
        except ValueError:
            raise ValueError(f"{path}: the service credential is not JSON") from None
        fields = ("service", "client_id", "client_secret")
        if not isinstance(document, dict) or not all(
            isinstance(document.get(name), str) and document[name] for name in fields
        ):
            raise ValueError(f"{path}: expected an object with {', '.join(fields)}")
        return cls(document["service"], document["client_id"], document["client_secret"])

    def write(self, path: Path) -> None:
        """Write atomically as 0600 in a 0700 folder: a reader sees the old file or the new one."""
        private_directory(path.parent)
        body = {
            "service": self.service,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        write_atomic(path, json.dumps(body, indent=2).encode() + b"\n")


def identified_clients(
    settings: ServiceSettings, *, clock: Clock = SYSTEM_CLOCK, **manager_options: Any
) -> tuple[GrpcClientManager, ServiceTokenSource]:
    """The service's peer clients, every call carrying the service's own token from Auth
    (``manager_options`` go to ``GrpcClientManager.from_settings``).

    The token source is not started: start it with the server (``start()``) and stop it on
    shutdown. Its first fetch goes through these same clients to Auth's IssueServiceToken,
    which needs no token.
    """
    if settings.service_credentials_file is None:
        raise SettingsError(
            f"invalid {settings.service_name} settings: SERVICE_CREDENTIALS_FILE: a service that"
            " calls peers needs its own credential"
        )
    credentials_file = settings.service_credentials_file

    async def fetch() -> IssuedServiceToken:
        try:
            credential = ServiceCredential.load(credentials_file)
        except ValueError as error:
            raise Unauthenticated(str(error)) from None
        reply = await auth.issue_service_token(
            credential.client_id, credential.client_secret, timeout_ms=ISSUE_TIMEOUT_MS
        )
        expires_at = reply.expires_at.seconds + reply.expires_at.nanos / 1e9
        return IssuedServiceToken(reply.access_token, expires_at)

    tokens = ServiceTokenSource(fetch, clock=clock)
    clients = GrpcClientManager.from_settings(
        settings, service_token=tokens, clock=clock, **manager_options
    )
    auth = AuthServiceClient(clients)  # bound before the first fetch can run (start())
    return clients, tokens


class PeerAccess:
    """How a service reaches its peers: clients that carry its own token, and Auth's feed of
    revoked tokens. ``start()`` with the server, ``stop()`` on shutdown (before closing
    ``clients``).

    Tests may inject ``clients`` of their own; those carry whatever token the test gives them,
    and no token is fetched.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        clients: GrpcClientManager | None = None,
    ) -> None:
        self.tokens: ServiceTokenSource | None = None
        if clients is None:
            clients, self.tokens = identified_clients(settings, clock=clock)
        self.clients = clients
        self.revocations = auth_revocation_feed(
            clients,
            settings,
            clock=clock,
            token_ready=None if self.tokens is None else self.tokens.wait_ready,
        )

    def start(self) -> None:
        if self.tokens is not None:
            self.tokens.start()
        self.revocations.start()

    async def stop(self) -> None:
        await self.revocations.stop()
        if self.tokens is not None:
            await self.tokens.stop()
