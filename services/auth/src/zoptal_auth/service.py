"""Users and their sessions: register, log in, refresh, revoke, validate, read.

Domain code only: it raises ``meshcore.errors`` and returns ``domain`` values; the servicer turns
both into gRPC. Slow work (Argon2id) happens outside database transactions, so a transaction never
holds a lock (SQLite's write lock in particular) while a password is being hashed.
"""

from __future__ import annotations

import contextlib
import logging
import uuid

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import Principal
from meshcore.db import Database
from meshcore.errors import (
    AlreadyExists,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from meshcore.jwt import InvalidToken
from meshcore.timeutil import from_unix, utc_now
from meshcore.validation import Violations
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zoptal_auth import repository
from zoptal_auth.access import (
    ADMIN_ROLE,
    is_admin,
    require_caller,
    require_token_validator,
    require_user_reader,
)
from zoptal_auth.domain import IssuedTokens, TokenCheck, UserRecord
from zoptal_auth.login_throttle import LoginThrottle
from zoptal_auth.models import RefreshFamily, RefreshToken, User
from zoptal_auth.passwords import LOCAL_CLIENT, SecretHasher
from zoptal_auth.revocation import ACCESS_TOKEN, REFRESH_FAMILY, RevocationList
from zoptal_auth.tokens import (
    REFRESH_TOKEN_PREFIX,
    TokenIssuer,
    hash_refresh_token,
    new_refresh_token,
)
from zoptal_auth.validation import (
    MAX_TOKEN_LENGTH,
    check_display_name,
    check_new_password,
    normalize_email,
    require_text,
)
from zoptal_auth.verification import AccessTokenVerifier

__all__ = ["DEFAULT_ROLE", "AuthService"]

logger = logging.getLogger(__name__)

DEFAULT_ROLE = "user"
BAD_CREDENTIALS = "invalid email or password"
BAD_REFRESH_TOKEN = "invalid refresh token"  # noqa: S105 - a message, not a secret


class AuthService:
    def __init__(
        self,
        *,
        database: Database,
        hasher: SecretHasher,
        throttle: LoginThrottle,
        issuer: TokenIssuer,
        verifier: AccessTokenVerifier,
        revocations: RevocationList,
        refresh_ttl: float,
        access_ttl: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._throttle = throttle
        self._issuer = issuer
        self._verifier = verifier
        self._revocations = revocations
        self._refresh_ttl = refresh_ttl
        self._access_ttl = access_ttl
        self._clock = clock

    # -- registration and login -------------------------------------------------------------

    async def register_user(
        self,
        email: str,
        password: str,
        display_name: str = "",
        *,
        roles: tuple[str, ...] = (),
        client: str = LOCAL_CLIENT,
    ) -> UserRecord:
        with Violations() as violations:
            with violations.check():
                normalized = normalize_email(email)
            with violations.check():
                check_new_password(password, email)  # compares only the case-folded local part
            with violations.check():
                name = check_display_name(display_name)
        password_hash = await self._hasher.hash(password, client=client)
        now = utc_now(self._clock)
        user = User(
            id=str(uuid.uuid4()),
            email=normalized,
            password_hash=password_hash,
            display_name=name,
            disabled=False,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._database.session() as session:
                if await repository.user_by_email(session, normalized) is not None:
                    raise AlreadyExists("email: is already registered")
                await repository.add_user(session, user, (DEFAULT_ROLE, *roles))
                return await self._record(session, user)
        except IntegrityError:  # a concurrent registration of the same email won the race
            raise AlreadyExists("email: is already registered") from None

    async def login(self, email: str, password: str, *, client: str = LOCAL_CLIENT) -> IssuedTokens:
        """``client`` is the caller's real address (the throttle's and the hashing pool's key)."""
        with Violations() as violations:
            with violations.check():
                require_text("email", email, max_length=254)
            with violations.check():
                require_text("password", password, max_length=128)
        # Before any Argon2 work or database read, so that a refusal costs next to nothing (a
        # flood of refused logins otherwise spends the CPU a victim's own login needs).
        await self._throttle.check(email, client)
        self._hasher.pool.refuse_if_full(client)
        async with self._database.session() as session:
            user = await repository.user_by_email(session, email.strip().lower())
        # Unknown users cost one Argon2id verification too (against a dummy hash), and get the
        # very same answer: the verification runs before the check, so how long a login takes
        # does not tell whether the email is registered.
        stored_hash = user.password_hash if user is not None else None
        matched = await self._hasher.verify(stored_hash, password, client=client)
        if user is None or not matched:
            await self._throttle.failed(email, client)
            raise Unauthenticated(BAD_CREDENTIALS)
        await self._throttle.succeeded(email, client)
        if user.disabled:
            raise PermissionDenied("this user is disabled")
        new_hash = None
        if self._hasher.needs_rehash(user.password_hash):
            # With the pool full, keep the old hash: the next login upgrades it.
            with contextlib.suppress(ResourceExhausted):
                new_hash = await self._hasher.hash(password, client=client)
        now = self._clock.time()
        family = RefreshFamily(
            id=str(uuid.uuid4()),
            user_id=user.id,
            created_at=from_unix(now),
            expires_at=from_unix(now + self._refresh_ttl),
        )
        refresh_token = new_refresh_token()
        async with self._database.session() as session:
            if new_hash is not None:
                await repository.replace_password_hash(
                    session, user.id, old=user.password_hash, new=new_hash, now=from_unix(now)
                )
            session.add(family)
            await session.flush()
            session.add(self._refresh_row(family, refresh_token, now))
            record = await self._record(session, user)
        return self._tokens(record, family, refresh_token)

    # -- refresh and revoke -----------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        require_text("refresh_token", refresh_token, max_length=MAX_TOKEN_LENGTH)
        now = self._clock.time()
        replayed: RefreshFamily | None = None
        new_token = new_refresh_token()
        async with self._database.session() as session:
            found = await repository.find_refresh_token(session, hash_refresh_token(refresh_token))
            if found is None:
                raise Unauthenticated(BAD_REFRESH_TOKEN)
            row, family = found
            if family.revoked_at is not None:
                raise Unauthenticated(BAD_REFRESH_TOKEN)
            if min(row.expires_at, family.expires_at) <= from_unix(now):
                raise Unauthenticated("refresh token has expired")
            if not await repository.mark_refresh_token_spent(session, row.id, from_unix(now)):
                # A spent token came back: it was stolen, or the client is replaying. Either
                # way nobody can tell the thief from the owner, so the whole family goes.
                await self._revoke_family(session, family, reason="reuse", now=now)
                replayed = family
            else:
                user = await repository.user_by_id(session, family.user_id)
                if user is None or user.disabled:
                    raise Unauthenticated(BAD_REFRESH_TOKEN)
                session.add(self._refresh_row(family, new_token, now))
                record = await self._record(session, user)
        if replayed is not None:
            self._remember_family(replayed)
            logger.warning("refresh token reuse: session %s revoked", replayed.id)
            raise Unauthenticated("refresh token was already used; the session is revoked")
        return self._tokens(record, family, new_token)

    async def revoke(self, token: str, principal: Principal | None) -> bool:
        """RFC 7009: True when a live token was revoked now; unknown or dead tokens give False."""
        require_text("token", token, max_length=MAX_TOKEN_LENGTH)
        caller = require_caller(principal)
        if token.startswith(REFRESH_TOKEN_PREFIX):
            return await self._revoke_refresh_token(token, caller)
        return await self._revoke_access_token(token, caller)

    async def _revoke_access_token(self, token: str, caller: Principal) -> bool:
        try:
            verified = await self._verifier.verify(token)
        except InvalidToken:
            return False  # nothing that could still be used, so nothing to revoke
        owner = (verified.subject, verified.token_type)
        if not is_admin(caller) and (caller.subject, caller.kind) != owner:
            raise PermissionDenied("only the token's owner or an admin may revoke it")
        token_id = verified.claims.get("jti")
        if not isinstance(token_id, str) or not token_id:
            return False  # seed-style tokens without jti cannot be revoked one by one
        async with self._database.session() as session:
            revoked = await repository.add_revocation(
                session,
                kind=ACCESS_TOKEN,
                value=token_id,
                expires_at=from_unix(verified.expires_at),
                now=utc_now(self._clock),
            )
        self._revocations.remember(ACCESS_TOKEN, token_id, verified.expires_at)
        return revoked

    async def _revoke_refresh_token(self, token: str, caller: Principal) -> bool:
        async with self._database.session() as session:
            found = await repository.find_refresh_token(session, hash_refresh_token(token))
            if found is None:
                return False
            _, family = found
            if not is_admin(caller) and (caller.kind, caller.subject) != ("user", family.user_id):
                raise PermissionDenied("only the token's owner or an admin may revoke it")
            revoked = await self._revoke_family(
                session, family, reason="revoked", now=self._clock.time()
            )
        self._remember_family(family)
        return revoked

    async def _revoke_family(
        self, session: AsyncSession, family: RefreshFamily, *, reason: str, now: float
    ) -> bool:
        revoked = await repository.revoke_family(
            session, family.id, reason=reason, now=from_unix(now)
        )
        await repository.add_revocation(
            session,
            kind=REFRESH_FAMILY,
            value=family.id,
            expires_at=from_unix(self._family_revocation_end(family)),
            now=from_unix(now),
        )
        return revoked

    def _family_revocation_end(self, family: RefreshFamily) -> float:
        # The family's access tokens outlive its last refresh by at most one access lifetime.
        return family.expires_at.timestamp() + self._access_ttl

    def _remember_family(self, family: RefreshFamily) -> None:
        self._revocations.remember(REFRESH_FAMILY, family.id, self._family_revocation_end(family))

    # -- validation and reading -------------------------------------------------------------

    async def validate(self, token: str, principal: Principal | None) -> TokenCheck:
        """A verdict, never an exception, for any token an allowed caller may send: a caller
        holding ``user:validate`` (services, admins), or the token's own principal. Anyone else
        learns nothing about a valid token (PERMISSION_DENIED before its revocation is looked
        up); an invalid token names nobody, so its verdict is anyone's."""
        require_text("token", token, max_length=MAX_TOKEN_LENGTH)
        caller = require_caller(principal)
        try:
            verified = await self._verifier.verify(token)
        except InvalidToken as invalid:
            return TokenCheck(None, invalid.reason, invalid.detail)
        require_token_validator(caller, verified.subject, verified.token_type)
        token_id = verified.claims.get("jti")
        session_id = verified.claims.get("sid")
        if await self._revocations.is_revoked(
            token_id=token_id if isinstance(token_id, str) else None,
            session_id=session_id if isinstance(session_id, str) else None,
        ):
            return TokenCheck(None, "revoked", "token has been revoked")
        return TokenCheck(verified)

    async def get_user(self, user_id: str, principal: Principal | None) -> UserRecord:
        require_text("user_id", user_id, max_length=64)
        require_user_reader(principal, user_id)
        async with self._database.session() as session:
            user = await repository.user_by_id(session, user_id)
            if user is None:
                raise NotFound("user", user_id)
            return await self._record(session, user)

    async def ensure_admin(self, email: str, password: str) -> UserRecord:
        """Make sure ``email`` exists and is an admin (operator bootstrap; keeps a set password)."""
        normalized = normalize_email(email, field="AUTH_BOOTSTRAP_ADMIN_EMAIL")
        async with self._database.session() as session:
            user = await repository.user_by_email(session, normalized)
            if user is not None:
                await repository.assign_role(session, user.id, ADMIN_ROLE)
                return await self._record(session, user)
        try:
            return await self.register_user(
                normalized, password, "Administrator", roles=(ADMIN_ROLE,)
            )
        except AlreadyExists:  # another replica bootstrapped it a moment ago
            return await self.ensure_admin(email, password)

    # -- helpers ----------------------------------------------------------------------------

    def _refresh_row(self, family: RefreshFamily, token: str, now: float) -> RefreshToken:
        return RefreshToken(
            id=str(uuid.uuid4()),
            family_id=family.id,
            token_hash=hash_refresh_token(token),
            issued_at=from_unix(now),
            expires_at=family.expires_at,  # rotation never extends a login's lifetime
        )

    def _tokens(self, user: UserRecord, family: RefreshFamily, refresh_token: str) -> IssuedTokens:
        access = self._issuer.access_token(
            user_id=user.id,
            email=user.email,
            roles=user.roles,
            permissions=user.permissions,
            session_id=family.id,
        )
        return IssuedTokens(
            access_token=access.token,
            access_expires_at=access.expires_at,
            refresh_token=refresh_token,
            refresh_expires_at=family.expires_at.timestamp(),
            user=user,
        )

    async def _record(self, session: AsyncSession, user: User) -> UserRecord:
        roles, permissions = await repository.roles_and_permissions(session, user.id)
        return UserRecord(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            roles=tuple(roles),
            permissions=tuple(permissions),
            disabled=user.disabled,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )
