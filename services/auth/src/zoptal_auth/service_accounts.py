"""Service accounts: created by admins, exchanged for service tokens by client credentials."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import Principal
from meshcore.db import Database
from meshcore.errors import AlreadyExists, PermissionDenied, Unauthenticated
from sqlalchemy.exc import IntegrityError

from zoptal_auth import repository
from zoptal_auth.access import require_account_creator
from zoptal_auth.models import ServiceAccount
from zoptal_auth.passwords import SecretHasher
from zoptal_auth.records import IssuedServiceToken, NewServiceAccount, ServiceAccountRecord
from zoptal_auth.tokens import TokenIssuer
from zoptal_auth.validation import (
    check_description,
    check_permissions,
    check_service_account_name,
    require_text,
)

__all__ = ["ServiceAccounts"]

BAD_CLIENT_CREDENTIALS = "invalid client credentials"


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
        name = check_service_account_name(name)
        description = check_description(description)
        granted = check_permissions(permissions)
        not_held = sorted(set(granted) - caller.permissions)
        if not_held:
            raise PermissionDenied(f"cannot grant permissions you do not hold: {not_held}")
        client_secret = secrets.token_urlsafe(32)
        account = ServiceAccount(
            id=str(uuid.uuid4()),
            client_id="sa_" + secrets.token_hex(12),
            name=name,
            description=description,
            secret_hash=await self._hasher.hash(client_secret),
            permissions=granted,
            disabled=False,
            created_at=datetime.fromtimestamp(self._clock.time(), UTC),
        )
        try:
            async with self._database.session() as session:
                if await repository.service_account_name_taken(session, name):
                    raise AlreadyExists(f"name: service account {name!r} already exists")
                session.add(account)
        except IntegrityError:
            raise AlreadyExists(f"name: service account {name!r} already exists") from None
        return NewServiceAccount(account=_record(account), client_secret=client_secret)

    async def issue_token(
        self, client_id: str, client_secret: str, permissions: Sequence[str]
    ) -> IssuedServiceToken:
        require_text("client_id", client_id, max_length=64)
        require_text("client_secret", client_secret, max_length=256)
        requested = check_permissions(permissions)
        async with self._database.session() as session:
            account = await repository.service_account_by_client_id(session, client_id)
        stored_hash = account.secret_hash if account is not None else None
        if account is None or not await self._hasher.verify(stored_hash, client_secret):
            raise Unauthenticated(BAD_CLIENT_CREDENTIALS)
        if account.disabled:
            raise PermissionDenied("this service account is disabled")
        not_granted = sorted(set(requested) - set(account.permissions))
        if not_granted:
            raise PermissionDenied(f"permissions not granted to this account: {not_granted}")
        carried = requested or sorted(account.permissions)
        signed = self._issuer.service_token(
            service_id=account.id, service_name=account.name, permissions=carried
        )
        return IssuedServiceToken(
            access_token=signed.token,
            expires_at=signed.expires_at,
            service_id=account.id,
            service_name=account.name,
            permissions=tuple(carried),
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
