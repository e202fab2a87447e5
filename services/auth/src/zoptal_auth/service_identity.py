"""Provisioning the platform services' identities: ensure, rotate and revoke their credentials.

Run by ``python -m zoptal_auth service-identity`` with Auth's own environment (its database),
once per install and whenever an operator rotates or revokes:

* ``ensure`` gives every platform service an account with the grants in
  ``platform_services.PLATFORM_SERVICES`` and a credential file under ``<dir>/<service>/``: it
  generates the file when missing, and registers a file it does not know yet (Kubernetes: the
  files come from Secrets an operator created). Idempotent; it never brings a revoked credential
  back.
* ``rotate`` writes a new credential for one service; the old one keeps working for a grace
  period, long enough for the service to pick up the new file at its next token renewal.
* ``revoke`` ends every credential of one service and revokes the tokens issued under them (a
  session revocation per credential, which every verifier polls), so that service is refused
  within seconds while every other service keeps working.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.secret_policy import secret_problem
from meshcore.timeutil import utc_now
from sqlalchemy.ext.asyncio import AsyncSession
from zoptal.clients.service_identity import ServiceCredential

from zoptal_auth import repository
from zoptal_auth.models import ServiceAccount
from zoptal_auth.passwords import SecretHasher
from zoptal_auth.platform_services import PLATFORM_SERVICES
from zoptal_auth.revocation import REFRESH_FAMILY
from zoptal_auth.service_accounts import (
    credential_matches,
    new_account,
    new_client_secret,
    new_credential,
)
from zoptal_auth.settings import AuthSettings

__all__ = [
    "CREDENTIALS_FILE_NAME",
    "IdentityError",
    "PlatformIdentities",
    "credentials_path",
    "run_identity_command",
]

CREDENTIALS_FILE_NAME = "credentials.json"
DEFAULT_GRACE_SECONDS = 600.0


class IdentityError(Exception):
    """An operator's request that cannot be carried out; the message says why."""


def credentials_path(credentials_dir: Path, service: str) -> Path:
    return credentials_dir / service / CREDENTIALS_FILE_NAME


@dataclass(frozen=True)
class Outcome:
    service: str
    action: str
    """What happened: created, registered, kept, rotated, revoked, or refused (with why)."""


class PlatformIdentities:
    def __init__(
        self,
        database: Database,
        hasher: SecretHasher,
        *,
        service_token_ttl: float,
        leeway: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._token_window = service_token_ttl + leeway
        self._clock = clock

    @classmethod
    def for_settings(cls, database: Database, settings: AuthSettings) -> PlatformIdentities:
        """Hashing and token lifetimes as Auth's own settings have them."""
        hasher = SecretHasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        return cls(
            database,
            hasher,
            service_token_ttl=settings.service_token_ttl_seconds,
            leeway=settings.jwt_leeway_seconds,
        )

    async def ensure(self, credentials_dir: Path, services: Iterable[str]) -> list[Outcome]:
        return [await self._ensure_one(credentials_dir, name) for name in _known(services)]

    async def rotate(
        self, credentials_dir: Path, service: str, grace_seconds: float = DEFAULT_GRACE_SECONDS
    ) -> Outcome:
        (service,) = _known([service])
        now = utc_now(self._clock)
        async with self._database.session() as session:
            account = await repository.service_account_by_name(session, service)
            if account is None:
                raise IdentityError(f"{service}: no account yet; run `service-identity ensure`")
            secret = new_client_secret()
            await self._replace_credential(session, account, secret, now, grace_seconds)
            # The file is written before the commit: if writing fails nothing changes, and if
            # the commit fails, `ensure` registers the file that is already in place.
            ServiceCredential(service, account.client_id, secret).write(
                credentials_path(credentials_dir, service)
            )
        return Outcome(service, f"rotated (the old credential ends in {grace_seconds:g}s)")

    async def revoke(self, service: str) -> Outcome:
        (service,) = _known([service])
        now = utc_now(self._clock)
        async with self._database.session() as session:
            account = await repository.service_account_by_name(session, service)
            if account is None:
                raise IdentityError(f"{service}: there is no such account")
            revoked = await repository.revoke_credentials(session, account.id, now)
            # Tokens already issued live at most one token lifetime: listing each credential
            # as a revoked session for that long refuses them everywhere in the meantime.
            until = now + timedelta(seconds=self._token_window)
            for credential_id in revoked:
                await repository.add_revocation(
                    session, kind=REFRESH_FAMILY, value=credential_id, expires_at=until, now=now
                )
        return Outcome(service, f"revoked {len(revoked)} credential(s) and their tokens")

    async def _ensure_one(self, credentials_dir: Path, service: str) -> Outcome:
        path = credentials_path(credentials_dir, service)
        now = utc_now(self._clock)
        async with self._database.session() as session:
            account = await repository.service_account_by_name(session, service)
            if not path.exists():
                secret = new_client_secret()
                if account is None:
                    account = await self._create(session, service, secret, now)
                    action = "created"
                else:  # the file was lost: its secret cannot be recovered, so replace it
                    await self._replace_credential(session, account, secret, now, 0.0)
                    action = "issued a new credential (its file was missing)"
                account.permissions = list(PLATFORM_SERVICES[service])
                ServiceCredential(service, account.client_id, secret).write(path)
                return Outcome(service, action)
            try:
                credential = ServiceCredential.load(path)
            except ValueError as error:
                raise IdentityError(str(error)) from None
            if credential.service != service:
                raise IdentityError(f"{path}: the file is {credential.service!r}'s credential")
            weakness = secret_problem(credential.client_secret)
            if weakness is not None:  # stored as a plain digest, so it must be unguessable
                raise IdentityError(
                    f"{path}: the client secret is too weak ({weakness}); delete the file and "
                    "run `ensure` again to have one generated"
                )
            if account is None:
                account = await self._create(
                    session, service, credential.client_secret, now, credential.client_id
                )
                return Outcome(service, "registered")
            if account.client_id != credential.client_id:
                raise IdentityError(
                    f"{path}: client id {credential.client_id} is not {service}'s account"
                )
            account.permissions = list(PLATFORM_SERVICES[service])
            return await self._register_if_new(session, account, credential, now)

    async def _register_if_new(
        self,
        session: AsyncSession,
        account: ServiceAccount,
        credential: ServiceCredential,
        now: datetime,
    ) -> Outcome:
        known = await repository.all_credentials(session, account.id)
        for stored in known:
            if await credential_matches(self._hasher, stored.secret_hash, credential.client_secret):
                if stored.revoked_at is not None:
                    return Outcome(
                        account.name, "refused: this credential was revoked; run `rotate`"
                    )
                return Outcome(account.name, "kept")
        await self._replace_credential(
            session, account, credential.client_secret, now, DEFAULT_GRACE_SECONDS
        )
        return Outcome(account.name, "registered a new credential (the old one ends in grace)")

    async def _create(
        self,
        session: AsyncSession,
        service: str,
        secret: str,
        now: datetime,
        client_id: str | None = None,
    ) -> ServiceAccount:
        account = new_account(
            service, f"the platform's {service} service", PLATFORM_SERVICES[service], now
        )
        if client_id is not None:
            account.client_id = client_id
        session.add(account)
        await session.flush()
        session.add(new_credential(account.id, secret, now))
        return account

    async def _replace_credential(
        self,
        session: AsyncSession,
        account: ServiceAccount,
        secret: str,
        now: datetime,
        grace_seconds: float,
    ) -> None:
        until = now + timedelta(seconds=max(grace_seconds, 0.0))
        await repository.retire_current_credentials(session, account.id, until=until)
        session.add(new_credential(account.id, secret, now))


def _known(services: Iterable[str]) -> list[str]:
    names = list(services) or list(PLATFORM_SERVICES)
    unknown = sorted(set(names) - set(PLATFORM_SERVICES))
    if unknown:
        raise IdentityError(
            f"not platform services: {', '.join(unknown)} (known: {', '.join(PLATFORM_SERVICES)})"
        )
    return names


async def run_identity_command(settings: AuthSettings, args: argparse.Namespace) -> list[Outcome]:
    """One ``service-identity`` command against Auth's database."""
    database = Database(settings.database_url, application_name="zoptal-auth-identity")
    try:
        identities = PlatformIdentities.for_settings(database, settings)
        if args.action == "ensure":
            return await identities.ensure(args.credentials_dir, args.services)
        if args.action == "rotate":
            return [await identities.rotate(args.credentials_dir, args.service, args.grace_seconds)]
        return [await identities.revoke(args.service)]
    finally:
        await database.dispose()
