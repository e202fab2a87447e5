"""gRPC endpoints of zoptal.auth.v1.AuthService: read the request, call the domain, build the reply.

Errors are raised as ``meshcore.errors`` and mapped by the error interceptor; nothing here calls
``context.abort``. The caller's identity comes from ``meshcore.context.current_principal()``.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.duration_pb2 import Duration
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import current_principal
from meshcore.interceptors.client_address import client_address
from meshcore.jwt import VerifiedToken
from meshcore.timeutil import to_timestamp
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc

from zoptal_auth.access import require_revocation_reader
from zoptal_auth.domain import ServiceAccountRecord, TokenCheck, UserRecord
from zoptal_auth.health import HealthReporter
from zoptal_auth.keys import KeyRing
from zoptal_auth.revocation_listing import RevocationListing
from zoptal_auth.service import AuthService
from zoptal_auth.service_accounts import ServiceAccounts

__all__ = ["VERSION", "AuthServicer"]

VERSION = "0.1.0"
BEARER = "Bearer"
_REASONS = {
    reason: auth_pb2.InvalidTokenReason.Value("INVALID_TOKEN_REASON_" + reason.upper())
    for reason in (
        "malformed",
        "algorithm_not_allowed",
        "unknown_key",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "wrong_token_type",
        "revoked",
    )
}


def _user(record: UserRecord) -> auth_pb2.User:
    return auth_pb2.User(
        id=record.id,
        email=record.email,
        display_name=record.display_name,
        roles=record.roles,
        permissions=record.permissions,
        disabled=record.disabled,
        created_at=to_timestamp(record.created_at),
        updated_at=to_timestamp(record.updated_at),
    )


def _service_account(record: ServiceAccountRecord) -> auth_pb2.ServiceAccount:
    return auth_pb2.ServiceAccount(
        id=record.id,
        client_id=record.client_id,
        name=record.name,
        description=record.description,
        permissions=record.permissions,
        disabled=record.disabled,
        created_at=to_timestamp(record.created_at),
    )


class _Validations:
    """ValidateToken's replies. A valid token's reply depends on its verified claims alone, and
    the verifier hands out the same ``VerifiedToken`` for a token while it caches it
    (verification.py), so each such reply is built once and kept with it (at most ``size``,
    oldest out first). Expiry and revocation are decided on every call, before this."""

    def __init__(self, size: int) -> None:
        self._size = size
        # By id of the VerifiedToken, held here so that its id stays its own while cached.
        self._valid: dict[int, tuple[VerifiedToken, auth_pb2.ValidateTokenResponse]] = {}

    def reply(self, check: TokenCheck) -> auth_pb2.ValidateTokenResponse:
        verified = check.verified
        if verified is None:
            return auth_pb2.ValidateTokenResponse(
                valid=False,
                reason=_REASONS.get(check.reason, auth_pb2.INVALID_TOKEN_REASON_MALFORMED),
                reason_detail=check.detail,
            )
        cached = self._valid.get(id(verified))
        if cached is not None and cached[0] is verified:
            return cached[1]
        reply = _valid_reply(verified)
        if self._size > 0:
            while len(self._valid) >= self._size:
                del self._valid[next(iter(self._valid))]
            self._valid[id(verified)] = (verified, reply)
        return reply


def _valid_reply(verified: VerifiedToken) -> auth_pb2.ValidateTokenResponse:
    claims = verified.claims
    reply = auth_pb2.ValidateTokenResponse(
        valid=True,
        permissions=sorted(verified.permissions),
        token_id=_text(claims.get("jti")),
    )
    if verified.expires_at != float("inf"):
        reply.expires_at.CopyFrom(to_timestamp(verified.expires_at))
    issued_at = claims.get("iat")
    if isinstance(issued_at, int | float) and not isinstance(issued_at, bool):
        reply.issued_at.CopyFrom(to_timestamp(float(issued_at)))
    if verified.token_type == "service":  # noqa: S105 - a token kind, not a secret
        reply.token_type = auth_pb2.TOKEN_TYPE_SERVICE
        reply.service_id = _text(claims.get("serviceId")) or verified.subject
        reply.service_name = _text(claims.get("serviceName"))
    else:
        reply.token_type = auth_pb2.TOKEN_TYPE_USER
        reply.user_id = verified.subject
        reply.email = _text(claims.get("email"))
        reply.roles.extend(sorted(verified.roles))
    return reply


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        *,
        auth: AuthService,
        service_accounts: ServiceAccounts,
        keys: KeyRing,
        health: HealthReporter,
        revocations: RevocationListing,
        trusted_proxy_hops: int = 0,
        clock: Clock = SYSTEM_CLOCK,
        validation_cache_size: int = 10_000,
    ) -> None:
        self._auth = auth
        self._validations = _Validations(validation_cache_size)
        self._hops = trusted_proxy_hops
        self._revocations = revocations
        self._service_accounts = service_accounts
        self._keys = keys
        self._health = health
        self._clock = clock
        # The key set only changes with a restart; its order (current first) changes when a
        # published key starts signing (zoptal_auth.keys), so the reply is rebuilt only then.
        self._jwks_reply = auth_pb2.GetJwksResponse()

    def _client(self, context: Any) -> str:
        """The caller's real address: what logins are throttled and hashing is shared by."""
        return client_address(context, self._hops)

    async def RegisterUser(self, request: Any, context: Any) -> auth_pb2.RegisterUserResponse:
        user = await self._auth.register_user(
            request.email, request.password, request.display_name, client=self._client(context)
        )
        return auth_pb2.RegisterUserResponse(user=_user(user))

    async def Login(self, request: Any, context: Any) -> auth_pb2.LoginResponse:
        tokens = await self._auth.login(
            request.email, request.password, client=self._client(context)
        )
        return auth_pb2.LoginResponse(
            access_token=tokens.access_token,
            access_token_expires_at=to_timestamp(tokens.access_expires_at),
            refresh_token=tokens.refresh_token,
            refresh_token_expires_at=to_timestamp(tokens.refresh_expires_at),
            token_type=BEARER,
            user=_user(tokens.user),
        )

    async def RefreshToken(self, request: Any, context: Any) -> auth_pb2.RefreshTokenResponse:
        tokens = await self._auth.refresh(request.refresh_token)
        return auth_pb2.RefreshTokenResponse(
            access_token=tokens.access_token,
            access_token_expires_at=to_timestamp(tokens.access_expires_at),
            refresh_token=tokens.refresh_token,
            refresh_token_expires_at=to_timestamp(tokens.refresh_expires_at),
            token_type=BEARER,
        )

    async def RevokeToken(self, request: Any, context: Any) -> auth_pb2.RevokeTokenResponse:
        revoked = await self._auth.revoke(request.token, current_principal())
        return auth_pb2.RevokeTokenResponse(revoked=revoked)

    async def ValidateToken(self, request: Any, context: Any) -> auth_pb2.ValidateTokenResponse:
        return self._validations.reply(
            await self._auth.validate(request.token, current_principal())
        )

    async def GetUser(self, request: Any, context: Any) -> auth_pb2.GetUserResponse:
        user = await self._auth.get_user(request.user_id, current_principal())
        return auth_pb2.GetUserResponse(user=_user(user))

    async def GetUserPermissions(
        self, request: Any, context: Any
    ) -> auth_pb2.GetUserPermissionsResponse:
        user = await self._auth.get_user(request.user_id, current_principal())
        return auth_pb2.GetUserPermissionsResponse(
            user_id=user.id, roles=user.roles, permissions=user.permissions
        )

    async def CreateServiceAccount(
        self, request: Any, context: Any
    ) -> auth_pb2.CreateServiceAccountResponse:
        created = await self._service_accounts.create(
            request.name, request.description, list(request.permissions), current_principal()
        )
        return auth_pb2.CreateServiceAccountResponse(
            service_account=_service_account(created.account),
            client_secret=created.client_secret,
        )

    async def IssueServiceToken(
        self, request: Any, context: Any
    ) -> auth_pb2.IssueServiceTokenResponse:
        issued = await self._service_accounts.issue_token(
            request.client_id,
            request.client_secret,
            list(request.permissions),
            client=self._client(context),
        )
        return auth_pb2.IssueServiceTokenResponse(
            access_token=issued.access_token,
            expires_at=to_timestamp(issued.expires_at),
            service_id=issued.service_id,
            service_name=issued.service_name,
            permissions=issued.permissions,
        )

    async def GetJwks(self, request: Any, context: Any) -> auth_pb2.GetJwksResponse:
        document = self._keys.jwks_json
        if self._jwks_reply.jwks_json != document:
            keys = json.loads(document)["keys"]
            self._jwks_reply = auth_pb2.GetJwksResponse(
                keys=[auth_pb2.Jwk(**key) for key in keys], jwks_json=document
            )
        return self._jwks_reply

    async def ListRevocations(self, request: Any, context: Any) -> auth_pb2.ListRevocationsResponse:
        require_revocation_reader(current_principal())
        page = await self._revocations.page(request.cursor, self._clock.time())
        return auth_pb2.ListRevocationsResponse(
            revocations=[
                auth_pb2.RevokedToken(
                    token_id=item.token_id,
                    session_id=item.session_id,
                    expires_at=to_timestamp(item.expires_at),
                )
                for item in page.items
            ],
            next_cursor=page.next_cursor,
            has_more=page.has_more,
        )

    async def HealthCheck(self, request: Any, context: Any) -> auth_pb2.HealthCheckResponse:
        reports = await self._health.report()
        dependencies = []
        for report in sorted(reports, key=lambda r: r.name):
            latency = Duration()
            latency.FromNanoseconds(int(report.latency_seconds * 1_000_000_000))
            dependencies.append(
                auth_pb2.DependencyHealth(
                    name=report.name,
                    status=auth_pb2.HEALTH_STATUS_HEALTHY
                    if report.healthy
                    else auth_pb2.HEALTH_STATUS_UNHEALTHY,
                    detail=report.detail,
                    latency=latency,
                )
            )
        overall = (
            auth_pb2.HEALTH_STATUS_HEALTHY
            if all(r.healthy for r in reports)
            else auth_pb2.HEALTH_STATUS_UNHEALTHY
        )
        return auth_pb2.HealthCheckResponse(
            status=overall,
            dependencies=dependencies,
            version=VERSION,
            checked_at=to_timestamp(self._clock.time()),
        )
