"""The platform services' identities: provisioned per install, rotated and revoked one by one.

Against the real Auth server (SQLite and PostgreSQL), the way ``python -m zoptal_auth
service-identity`` drives it, plus the command line itself once.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from secrets import token_urlsafe

import grpc
import jwt
import pytest
from meshcore.db import Database
from zoptal.auth.v1 import auth_pb2
from zoptal.clients.service_identity import ServiceCredential
from zoptal_auth import repository
from zoptal_auth.passwords import SecretHasher
from zoptal_auth.platform_services import PLATFORM_SERVICES
from zoptal_auth.service_identity import IdentityError, PlatformIdentities, credentials_path

from tests.integration.auth.conftest import AuthUnderTest


def _identities(auth: AuthUnderTest) -> PlatformIdentities:
    return PlatformIdentities.for_settings(auth.app.database, auth.app.settings)


async def _issue(
    auth: AuthUnderTest, credential: ServiceCredential
) -> auth_pb2.IssueServiceTokenResponse:
    return await auth.stub.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(
            client_id=credential.client_id, client_secret=credential.client_secret
        )
    )


async def _code_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_ensure_gives_each_service_its_own_credential_with_only_its_grants(
    auth: AuthUnderTest, tmp_path: Path
) -> None:
    """One account and one 0600 file per service; each token carries exactly its grants."""
    outcomes = await _identities(auth).ensure(tmp_path, [])
    assert {o.service: o.action for o in outcomes} == dict.fromkeys(PLATFORM_SERVICES, "created")
    secrets = set()
    for service, grants in PLATFORM_SERVICES.items():
        path = credentials_path(tmp_path, service)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        credential = ServiceCredential.load(path)
        secrets.add(credential.client_secret)
        issued = await _issue(auth, credential)
        claims = jwt.decode(issued.access_token, options={"verify_signature": False})
        assert claims["typ"] == "service"
        assert claims["serviceName"] == service
        assert claims["permissions"] == sorted(grants)
        assert "roles" not in claims
        assert claims["exp"] - claims["iat"] == auth.app.settings.service_token_ttl_seconds
        assert jwt.get_unverified_header(issued.access_token)["alg"] == "ES256"
    assert len(secrets) == len(PLATFORM_SERVICES)


async def test_ensure_is_idempotent_and_adopts_files_it_did_not_write(
    auth: AuthUnderTest, tmp_path: Path
) -> None:
    """A second run keeps everything; a file an operator generated is registered (Kubernetes)."""
    identities = _identities(auth)
    await identities.ensure(tmp_path, ["project"])
    before = credentials_path(tmp_path, "project").read_bytes()
    again = await identities.ensure(tmp_path, ["project"])
    assert [o.action for o in again] == ["kept"]
    assert credentials_path(tmp_path, "project").read_bytes() == before

    operator_made = ServiceCredential("billing", "sa_" + "ab" * 12, token_urlsafe(32))
    operator_made.write(credentials_path(tmp_path, "billing"))
    (registered,) = await identities.ensure(tmp_path, ["billing"])
    assert registered.action == "registered"
    assert (await _issue(auth, operator_made)).service_name == "billing"


@pytest.mark.parametrize("weak", ["x" * 43, "change-me-please-change-me-please-1234", "short"])
async def test_an_operator_file_with_a_guessable_secret_is_refused(
    auth: AuthUnderTest, tmp_path: Path, weak: str
) -> None:
    """Secrets are stored as a plain digest, so one from outside must be unguessable: ensure
    names the file and registers nothing."""
    ServiceCredential("billing", "sa_" + "cd" * 12, weak).write(
        credentials_path(tmp_path, "billing")
    )
    with pytest.raises(IdentityError, match=r"credentials\.json: the client secret is too weak"):
        await _identities(auth).ensure(tmp_path, ["billing"])
    async with auth.app.database.session() as session:
        assert await repository.service_account_by_name(session, "billing") is None


async def test_secrets_are_stored_as_digests_and_argon2_ones_from_before_still_work(
    auth: AuthUnderTest, tmp_path: Path
) -> None:
    """New credentials keep a SHA-256 digest (no Argon2 per token); a credential stored with
    Argon2 by an earlier version still gets tokens, and a wrong secret still does not."""
    identities = _identities(auth)
    await identities.ensure(tmp_path, ["notification"])
    credential = ServiceCredential.load(credentials_path(tmp_path, "notification"))
    async with auth.app.database.session() as session:
        (stored,) = await repository.all_credentials(
            session,
            (await repository.service_account_by_name(session, "notification")).id,  # type: ignore[union-attr]
        )
        assert stored.secret_hash.startswith("sha256$")
        assert credential.client_secret not in stored.secret_hash
        stored.secret_hash = await SecretHasher(time_cost=1, memory_kib=8, parallelism=1).hash(
            credential.client_secret
        )
    assert (await _issue(auth, credential)).service_name == "notification"
    wrong = ServiceCredential("notification", credential.client_id, token_urlsafe(32))
    assert await _code_of(_issue(auth, wrong)) == grpc.StatusCode.UNAUTHENTICATED
    assert [o.action for o in await identities.ensure(tmp_path, ["notification"])] == ["kept"]


async def test_a_stranger_and_a_wrong_secret_get_the_same_refusal(
    auth: AuthUnderTest, tmp_path: Path
) -> None:
    await _identities(auth).ensure(tmp_path, ["analytics"])
    real = ServiceCredential.load(credentials_path(tmp_path, "analytics"))
    for forged in (
        ServiceCredential("analytics", real.client_id, real.client_secret + "x"),
        ServiceCredential("analytics", "sa_" + "00" * 12, real.client_secret),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _issue(auth, forged)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert raised.value.details() == "invalid client credentials"


async def test_rotation_keeps_the_old_credential_for_its_grace_then_only_the_new_one(
    auth: AuthUnderTest, tmp_path: Path
) -> None:
    identities = _identities(auth)
    await identities.ensure(tmp_path, ["billing"])
    old = ServiceCredential.load(credentials_path(tmp_path, "billing"))
    await identities.rotate(tmp_path, "billing", grace_seconds=600)
    new = ServiceCredential.load(credentials_path(tmp_path, "billing"))
    assert new.client_id == old.client_id
    assert new.client_secret != old.client_secret
    assert (await _issue(auth, old)).service_name == "billing"  # still in its grace period
    assert (await _issue(auth, new)).service_name == "billing"
    # A rotation without grace (a leak) ends every older credential at once.
    await identities.rotate(tmp_path, "billing", grace_seconds=0)
    newest = ServiceCredential.load(credentials_path(tmp_path, "billing"))
    assert await _code_of(_issue(auth, new)) == grpc.StatusCode.UNAUTHENTICATED
    assert await _code_of(_issue(auth, old)) == grpc.StatusCode.UNAUTHENTICATED
    assert (await _issue(auth, newest)).service_name == "billing"


async def test_revoking_one_service_cuts_off_it_and_its_live_tokens_only(
    auth: AuthUnderTest, tmp_path: Path
) -> None:
    """After revoke: no new token, the issued one is refused, the other services keep working."""
    identities = _identities(auth)
    await identities.ensure(tmp_path, ["analytics", "project"])
    analytics = ServiceCredential.load(credentials_path(tmp_path, "analytics"))
    project = ServiceCredential.load(credentials_path(tmp_path, "project"))
    analytics_token = (await _issue(auth, analytics)).access_token
    project_token = (await _issue(auth, project)).access_token
    reader_call = auth.stub.ListRevocations  # both hold revocation:read
    request = auth_pb2.ListRevocationsRequest()
    await reader_call(request, metadata=(("x-service-token", analytics_token),))

    outcome = await identities.revoke("analytics")
    assert outcome.action.startswith("revoked 1 credential")

    assert await _code_of(_issue(auth, analytics)) == grpc.StatusCode.UNAUTHENTICATED
    await auth.app.revocations.sync()  # what every verifier's poll does within a second
    refused = reader_call(request, metadata=(("x-service-token", analytics_token),))
    assert await _code_of(refused) == grpc.StatusCode.UNAUTHENTICATED
    listed = await reader_call(request, metadata=(("x-service-token", project_token),))
    sid = jwt.decode(analytics_token, options={"verify_signature": False})["sid"]
    assert sid in {entry.session_id for entry in listed.revocations}
    assert (await _issue(auth, project)).service_name == "project"
    # ensure never brings the revoked credential back; rotate gives the service a new one.
    (kept,) = await identities.ensure(tmp_path, ["analytics"])
    assert kept.action.startswith("refused")
    await identities.rotate(tmp_path, "analytics")
    renewed = ServiceCredential.load(credentials_path(tmp_path, "analytics"))
    assert (await _issue(auth, renewed)).service_name == "analytics"


async def test_platform_names_are_reserved_and_unknown_services_refused(
    auth: AuthUnderTest, tmp_path: Path
) -> None:
    """No admin-made account can carry a platform service's serviceName."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth.stub.CreateServiceAccount(
            auth_pb2.CreateServiceAccountRequest(name="billing", permissions=["user:read"]),
            metadata=auth.bearer(auth.admin_token),
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "reserved" in (raised.value.details() or "")
    with pytest.raises(IdentityError, match="not platform services: nosuch"):
        await _identities(auth).ensure(tmp_path, ["nosuch"])


async def test_a_file_of_another_service_or_account_is_refused(
    auth: AuthUnderTest, tmp_path: Path
) -> None:
    identities = _identities(auth)
    await identities.ensure(tmp_path, ["project", "billing"])
    billing_file = credentials_path(tmp_path, "billing")
    credentials_path(tmp_path, "project").write_bytes(billing_file.read_bytes())
    with pytest.raises(IdentityError, match="'billing''s credential"):
        await identities.ensure(tmp_path, ["project"])
    stranger = ServiceCredential("project", "sa_" + "cd" * 12, token_urlsafe(32))
    stranger.write(credentials_path(tmp_path, "project"))
    with pytest.raises(IdentityError, match="is not project's account"):
        await identities.ensure(tmp_path, ["project"])


def test_the_command_line_creates_rotates_and_revokes(tmp_path: Path) -> None:
    """``python -m zoptal_auth service-identity``, with Auth's environment, as operators run it."""
    database = tmp_path / "auth.db"
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_PARALLELISM": "1",
    }
    command = [sys.executable, "-m", "zoptal_auth"]
    identities = str(tmp_path / "identities")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=120
        )

    assert run("migrate").returncode == 0
    created = run("service-identity", "ensure", "--credentials-dir", identities)
    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines() == [f"{name}: created" for name in PLATFORM_SERVICES]
    secret = json.loads(Path(identities, "project", "credentials.json").read_text())[
        "client_secret"
    ]
    assert secret not in created.stdout + created.stderr
    rotated = run("service-identity", "rotate", "--credentials-dir", identities, "project")
    assert rotated.returncode == 0
    assert "rotated" in rotated.stdout
    revoked = run("service-identity", "revoke", "project")
    assert revoked.returncode == 0
    assert "revoked 2 credential(s)" in revoked.stdout
    unknown = run("service-identity", "revoke", "mallory")
    assert unknown.returncode == 2
    assert "not platform services: mallory" in unknown.stderr


async def test_existing_service_accounts_keep_their_secret_across_the_migration(
    tmp_path: Path,
) -> None:
    """Migration 0004 moves each account's secret into its first credential."""
    from meshcore.migrations import upgrade_database
    from sqlalchemy import text
    from zoptal_auth.app import MIGRATIONS_DIR

    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    await upgrade_database(url, MIGRATIONS_DIR, revision="0003_revocation_read")
    hasher = SecretHasher(time_cost=1, memory_kib=1024, parallelism=1)
    database = Database(url)
    try:
        async with database.session() as session:
            await session.execute(
                text(
                    "INSERT INTO service_accounts (id, client_id, name, description, secret_hash,"
                    " permissions, disabled, created_at) VALUES ('a1', 'sa_1', 'reporting', '',"
                    " :hash, '[]', false, '2026-01-01 00:00:00.000000')"
                ),
                {"hash": await hasher.hash("the-old-secret")},
            )
        await upgrade_database(url, MIGRATIONS_DIR)
        async with database.session() as session:
            rows = (
                await session.execute(
                    text("SELECT account_id, secret_hash FROM service_credentials")
                )
            ).all()
    finally:
        await database.dispose()
    assert [row[0] for row in rows] == ["a1"]
    assert await hasher.verify(rows[0][1], "the-old-secret")
