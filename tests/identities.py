"""Real service identities for tests that run a real Auth: provisioned as an install would be.

``provision`` runs what ``python -m zoptal_auth service-identity ensure`` runs, against the test
Auth's database, so the credential files and accounts are the real ones; ``issued_token`` makes
the client-credentials exchange a service makes.
"""

from __future__ import annotations

from pathlib import Path

from meshcore.db import Database
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
from zoptal.clients.service_identity import ServiceCredential
from zoptal_auth.service_identity import PlatformIdentities, credentials_path
from zoptal_auth.settings import AuthSettings

__all__ = ["credential_of", "issued_token", "provision"]


async def provision(auth_settings: AuthSettings, credentials_dir: Path, *services: str) -> None:
    database = Database(auth_settings.database_url)
    try:
        await PlatformIdentities.for_settings(database, auth_settings).ensure(
            credentials_dir, services
        )
    finally:
        await database.dispose()


def credential_of(credentials_dir: Path, service: str) -> ServiceCredential:
    return ServiceCredential.load(credentials_path(credentials_dir, service))


async def issued_token(
    auth: auth_pb2_grpc.AuthServiceStub, credentials_dir: Path, service: str
) -> str:
    """The token Auth issues ``service`` for its own credential (all its grants)."""
    credential = credential_of(credentials_dir, service)
    reply = await auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(
            client_id=credential.client_id, client_secret=credential.client_secret
        )
    )
    return reply.access_token
