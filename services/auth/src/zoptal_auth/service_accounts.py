"""Service accounts: created by admins, exchanged for service tokens by client credentials.

A credential's secret is 256 random bits (``new_client_secret``) and is stored as its SHA-256
digest (``credential_hash``), not with Argon2 as passwords are: a slow hash protects what people
choose, which can be guessed; nothing guesses 256 random bits, and Argon2 here cost 0.1-0.2 s of
CPU for every token issued and every credential checked at start, which anyone could also make
Auth spend through the unauthenticated IssueServiceToken. Credentials hashed with Argon2 before
still verify (``credential_matches``); secrets from outside (an operator's credential file) must
pass ``meshcore.secret_policy`` first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import Principal
from meshcore.db import Database
from meshcore.errors import AlreadyExists, PermissionDenied, Unauthenticated
from meshcore.timeutil import utc_now
from meshcore.validation import Violations
from sqlalchemy.exc import IntegrityError

from zoptal_auth import repository
from zoptal_auth.access import require_account_creator
from zoptal_auth.domain import IssuedServiceToken, NewServiceAccount, ServiceAccountRecord
from zoptal_auth.models import ServiceAccount, ServiceCredential
from zoptal_auth.passwords import LOCAL_CLIENT, SecretHasher
from zoptal_auth.platform_services import PLATFORM_SERVICES
from zoptal_auth.tokens import TokenIssuer
from zoptal_auth.validation import (
    check_description,
    check_permissions,
    check_service_account_name,
    require_text,
)

__all__ = [
    "ServiceAccounts",
    "credential_hash",
    "credential_matches",
    "new_account",
    "new_client_secret",
    "new_credential",
]

BAD_CLIENT_CREDENTIALS = "invalid client credentials"
SHA256_PREFIX = "sha256$"


class ServiceAccounts:
    def __init__(
        self,
        *,
        database: Database,
        hasher: SecretHasher,
        issuer: TokenIssuer,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._issuer = issuer
        self._clock = clock

    async def create(
        self,
        name: str,
        description: str,
        permissions: Sequence[str],
        principal: Principal | None,
    ) -> NewServiceAccount:
        caller = require_account_creator(principal)
        with Violations() as violations:
            with violations.check():
                name = check_service_account_name(name)
            with violations.check():
                description = check_description(description)
            with violations.check():
                granted = check_permissions(permissions)
        if name in PLATFORM_SERVICES:
            raise AlreadyExists(f"name: {name!r} is reserved for the platform's own service")
        not_held = sorted(set(granted) - caller.permissions)
        if not_held:
            raise PermissionDenied(f"cannot grant permissions you do not hold: {not_held}")
        client_secret = new_client_secret()
        now = utc_now(self._clock)
        account = new_account(name, description, granted, now)
        credential = new_credential(account.id, client_secret, now)
        try:
            async with self._database.session() as session:
                if await repository.service_account_name_taken(session, name):
                    raise AlreadyExists(f"name: service account {name!r} already exists")
                session.add(account)
                await session.flush()  # the account row first: the credential refers to it
                session.add(credential)
        except IntegrityError:
            raise AlreadyExists(f"name: service account {name!r} already exists") from None
        return NewServiceAccount(account=_record(account), client_secret=client_secret)

    async def issue_token(
        self,
        client_id: str,
        client_secret: str,
        permissions: Sequence[str],
        *,
        client: str = LOCAL_CLIENT,
    ) -> IssuedServiceToken:
        """``client`` is the caller's real address, its key in the hashing pool."""
        with Violations() as violations:
            with violations.check():
                require_text("client_id", client_id, max_length=64)
            with violations.check():
                require_text("client_secret", client_secret, max_length=256)
            with violations.check():
                requested = check_permissions(permissions)
        now = utc_now(self._clock)
        async with self._database.session() as session:
            account = await repository.service_account_by_client_id(session, client_id)
            live = (
                await repository.live_credentials(session, account.id, now)
                if account is not None
                else []
            )
        credential = await self._matching(live, client_secret, client)
        if account is None or credential is None:
            raise Unauthenticated(BAD_CLIENT_CREDENTIALS)
        if account.disabled:
            raise PermissionDenied("this service account is disabled")
        not_granted = sorted(set(requested) - set(account.permissions))
        if not_granted:
            raise PermissionDenied(f"permissions not granted to this account: {not_granted}")
        carried = requested or sorted(account.permissions)
        signed = self._issuer.service_token(
            service_id=account.id,
            service_name=account.name,
            permissions=carried,
            credential_id=credential.id,
        )
        return IssuedServiceToken(
            access_token=signed.token,
            expires_at=signed.expires_at,
            service_id=account.id,
            service_name=account.name,
            permissions=tuple(carried),
        )

    async def _matching(
        self, live: Sequence[ServiceCredential], client_secret: str, client: str
    ) -> ServiceCredential | None:
        """The live credential ``client_secret`` belongs to, if any."""
        for credential in live:  # newest first; two at most, during a rotation's grace period
            if await credential_matches(
                self._hasher, credential.secret_hash, client_secret, client
            ):
                return credential
        return None


def new_credential(account_id: str, client_secret: str, now: datetime) -> ServiceCredential:
    """A credential row for ``client_secret``, which is stored only as its digest."""
    return ServiceCredential(
        id=str(uuid.uuid4()),
        account_id=account_id,
        secret_hash=credential_hash(client_secret),
        created_at=now,
        expires_at=None,
        revoked_at=None,
    )


def credential_hash(client_secret: str) -> str:
    """What is stored of a credential's secret (see the module's docstring)."""
    return SHA256_PREFIX + hashlib.sha256(client_secret.encode()).hexdigest()


async def credential_matches(
    hasher: SecretHasher, stored_hash: str, client_secret: str, client: str = LOCAL_CLIENT
) -> bool:
    """Whether ``client_secret`` is the one ``stored_hash`` was made from: a digest compared
    in constant time, or an older credential's Argon2 hash verified through the hashing pool."""
    if stored_hash.startswith(SHA256_PREFIX):
        return hmac.compare_digest(stored_hash, credential_hash(client_secret))
    return await hasher.verify(stored_hash, client_secret, client=client)


def new_client_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_account(
    name: str, description: str, permissions: Sequence[str], now: datetime
) -> ServiceAccount:
    return ServiceAccount(
        id=str(uuid.uuid4()),
        client_id="sa_" + secrets.token_hex(12),
        name=name,
        description=description,
        permissions=list(permissions),
        disabled=False,
        created_at=now,
    )


def _record(account: ServiceAccount) -> ServiceAccountRecord:
    return ServiceAccountRecord(
        id=account.id,
        client_id=account.client_id,
        name=account.name,
        description=account.description,
        permissions=tuple(account.permissions),
        disabled=account.disabled,
        created_at=account.created_at,
    )
