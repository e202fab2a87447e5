"""``AuthInterceptor``: who is calling, and may they call this method?

Users send ``authorization: Bearer <access token>``; services send ``x-service-token: <token>``
(when both are present, the service token wins: authorisation is about the immediate caller).
Tokens are verified by ``meshcore.jwt.TokenVerifier`` with pinned algorithms, ``exp``/``nbf``,
issuer and audience; the resulting ``Principal`` goes into the call context
(``meshcore.context.current_principal()``).

Verification costs 55-212 µs per token, so verified tokens are kept in a bounded cache keyed by
the exact token string and dropped when the token expires: a busy caller pays once per token,
not once per call. Revocation is the job of an optional ``revocations`` check
(``meshcore.revocation.RevocationCheck``, e.g. a ``RevocationFeed``): a local O(1) lookup asked
on every call, cache hits included, after verification; a revoked token is UNAUTHENTICATED
"token has been revoked", and a check that cannot vouch for its view raises ``Unavailable``.
Without one, a revoked token stays usable until it expires, as with any plain JWT.

Missing or invalid credentials end the call with UNAUTHENTICATED; a missing permission with
PERMISSION_DENIED naming it. Health and reflection are excluded by default; ``excluded_methods``
takes full method names or whole services (``/pkg.Service/*``).

Service tokens are verified like user tokens: signed by the issuer's asymmetric keys (the same
``key_source``), with issuer, audience, ``typ: service`` and expiry checked. A shared
``service_token_secret`` (the seed's HS256 service tokens, which carry no issuer or audience) is
a legacy opt-in that nothing in Zoptal configures: anyone holding that secret can mint any
service's token, so it is no identity at all. When given, such tokens must still expire unless
``service_tokens_expire=False`` is passed as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Protocol

import grpc.aio

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import Principal, call_state
from meshcore.errors import MeshError, PermissionDenied, Unauthenticated
from meshcore.interceptors.base import RpcMethod, call_metadata
from meshcore.interceptors.errors import abort_with
from meshcore.interceptors.hooks import AdmissionInterceptor
from meshcore.jwt import (
    ASYMMETRIC_ALGORITHMS,
    HMAC_ALGORITHMS,
    InvalidToken,
    KeySource,
    StaticKeys,
    TokenVerifier,
    VerifiedToken,
)
from meshcore.reasons import Reason
from meshcore.revocation import RevocationCheck, RevocationListNotReady

__all__ = [
    "DEFAULT_EXCLUDED_METHODS",
    "SERVICE_TOKEN_HEADER",
    "AuthInterceptor",
    "VerifiedTokenCache",
]

SERVICE_TOKEN_HEADER = "x-service-token"  # noqa: S105 - a header name, not a secret
DEFAULT_EXCLUDED_METHODS = (
    "/grpc.health.v1.Health/*",
    "/grpc.reflection.v1.ServerReflection/*",
    "/grpc.reflection.v1alpha.ServerReflection/*",
)
_USER_ASYMMETRIC = ("ES256", "EdDSA")
_NOTHING_REQUIRED: frozenset[str] = frozenset()
# How long a call that arrives before the revocation list's first sync waits for it.
FIRST_SYNC_WAIT_SECONDS = 5.0


class _SecretLike(Protocol):
    def reveal(self) -> str: ...


Secretish = str | bytes | _SecretLike


class Verifier(Protocol):
    async def verify(self, token: str, *, expected_type: str | None = None) -> VerifiedToken: ...


class VerifiedTokenCache:
    """Token string -> Principal, bounded, each entry expiring with its token.

    Eviction is oldest-inserted first: O(1) and good enough, because a hit never needs to
    reorder anything (the hot path is one dict lookup and one comparison).
    """

    def __init__(self, max_entries: int = 10_000, clock: Clock = SYSTEM_CLOCK) -> None:
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._max_entries = max_entries
        self._clock = clock

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[1] <= self._clock.time():
            self._entries.pop(token, None)
            return None
        return entry[0]

    def put(self, token: str, principal: Principal, expires_at: float) -> None:
        if self._max_entries <= 0:
            return
        while len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[token] = (principal, expires_at)

    def __len__(self) -> int:
        return len(self._entries)


class _HmacThenKeys:
    """HMAC algorithms get the shared secret; everything else goes to ``keys`` (a JWKS)."""

    def __init__(self, secret: bytes | None, keys: KeySource | None) -> None:
        self._hmac = StaticKeys(hmac_secret=secret) if secret else None
        self._keys = keys

    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        if algorithm in HMAC_ALGORITHMS:
            if self._hmac is None:
                raise InvalidToken("unknown_key", "no HMAC secret is configured")
            return await self._hmac.key_for(kid, algorithm)
        if self._keys is None:
            raise InvalidToken("unknown_key", "no public keys are configured")
        return await self._keys.key_for(kid, algorithm)


class AuthInterceptor(AdmissionInterceptor):
    """Authenticates every non-excluded call and checks its method's required permissions."""

    def __init__(
        self,
        jwt_secret: Secretish | None = None,
        service_token_secret: Secretish | None = None,
        excluded_methods: Iterable[str] = (),
        required_permissions: Mapping[str, Iterable[str]] | None = None,
        *,
        key_source: KeySource | None = None,
        user_verifier: Verifier | None = None,
        service_verifier: Verifier | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 30.0,
        service_tokens_expire: bool = True,
        exclude_health_and_reflection: bool = True,
        cache_size: int = 10_000,
        revocations: RevocationCheck | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__()
        self.revocations = revocations
        user_secret = _secret_bytes(jwt_secret)
        service_secret = _secret_bytes(service_token_secret)
        self._user_verifier = user_verifier or _build_verifier(
            user_secret, key_source, issuer, audience, leeway, clock, require_expiry=True
        )
        self._service_verifier = service_verifier or _service_token_verifier(
            service_secret, key_source, issuer, audience, leeway, clock, service_tokens_expire
        )
        excluded = list(excluded_methods)
        if exclude_health_and_reflection:
            excluded.extend(DEFAULT_EXCLUDED_METHODS)
        self._excluded_methods = frozenset(m for m in excluded if not m.endswith("/*"))
        self._excluded_services = tuple(m[:-1] for m in excluded if m.endswith("/*"))
        self._required = {
            method: tuple(permissions)
            for method, permissions in (required_permissions or {}).items()
        }
        self._required_sets = {
            method: frozenset(needed) for method, needed in self._required.items()
        }
        self.cache = VerifiedTokenCache(cache_size, clock)

    def applies_to(self, rpc: RpcMethod) -> bool:
        name = rpc.full_name
        return name not in self._excluded_methods and not name.startswith(self._excluded_services)

    def admit(
        self, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod
    ) -> Awaitable[None] | None:
        # Hot path, no coroutine and few calls: a cached token whose principal holds every
        # permission the method needs (one C-level subset test).
        try:
            kind, token = _credentials(call_metadata(context))
        except MeshError as error:
            return abort_with(context, error, rpc)
        principal = self.cache.get(token)
        if principal is None or principal.kind != kind:
            return self._admit_after_verifying(token, kind, context, rpc)
        return self._authorize(principal, context, rpc)

    async def _admit_after_verifying(
        self, token: str, kind: str, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod
    ) -> None:
        try:
            principal = await self._principal_for(token, kind)
        except MeshError as error:
            await abort_with(context, error, rpc)
        pending = self._authorize(principal, context, rpc)
        if pending is not None:
            await pending

    def _authorize(
        self, principal: Principal, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod
    ) -> Awaitable[None] | None:
        if self.revocations is not None:
            try:
                self._refuse_if_revoked(principal)
            except RevocationListNotReady as not_ready:
                return self._authorize_when_ready(not_ready, principal, context, rpc)
            except MeshError as error:
                return abort_with(context, error, rpc)
        return self._check_permissions(principal, context, rpc)

    async def _authorize_when_ready(
        self,
        not_ready: RevocationListNotReady,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
        rpc: RpcMethod,
    ) -> None:
        """Wait (bounded) for the revocation list's first sync, then check once more."""
        try:
            async with asyncio.timeout(FIRST_SYNC_WAIT_SECONDS):
                await not_ready.wait_ready()
            self._refuse_if_revoked(principal)
        except TimeoutError:
            await abort_with(context, not_ready, rpc)
        except MeshError as error:
            await abort_with(context, error, rpc)
        pending = self._check_permissions(principal, context, rpc)
        if pending is not None:
            await pending

    def _check_permissions(
        self, principal: Principal, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod
    ) -> Awaitable[None] | None:
        # One C-level subset test on the path every permitted call takes.
        required = self._required_sets.get(rpc.full_name, _NOTHING_REQUIRED)
        if required.issubset(principal.permissions):
            call_state().principal = principal
            return None
        for permission in self._required[rpc.full_name]:  # name the first one missing
            if permission not in principal.permissions:
                return abort_with(
                    context, PermissionDenied(f"missing permission {permission!r}"), rpc
                )
        raise AssertionError("a permission was missing")  # pragma: no cover - the subset failed

    async def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Principal:
        """The principal the metadata's credentials prove; Unauthenticated when they prove none."""
        kind, token = _credentials(metadata)
        principal = await self._principal_for(token, kind)
        try:
            self._refuse_if_revoked(principal)
        except RevocationListNotReady as not_ready:
            async with asyncio.timeout(FIRST_SYNC_WAIT_SECONDS):
                await not_ready.wait_ready()
            self._refuse_if_revoked(principal)
        return principal

    def _refuse_if_revoked(self, principal: Principal) -> None:
        if self.revocations is not None and self.revocations.is_revoked(principal):
            raise Unauthenticated("token has been revoked", reason=Reason.TOKEN_REVOKED)

    async def _principal_for(self, token: str, kind: str) -> Principal:
        cached = self.cache.get(token)
        if cached is not None and cached.kind == kind:
            return cached
        verifier = self._service_verifier if kind == "service" else self._user_verifier
        try:
            verified = await verifier.verify(token, expected_type=kind)
        except InvalidToken as error:
            raise Unauthenticated(
                f"invalid {kind} token: {error.reason}",
                reason=_TOKEN_REASONS.get(error.reason, Reason.TOKEN_INVALID),
                metadata={"token_problem": error.reason},
            ) from None
        principal = Principal(
            subject=verified.subject,
            kind=verified.token_type,
            permissions=verified.permissions,
            roles=verified.roles,
            claims=verified.claims,
        )
        self.cache.put(token, principal, verified.expires_at)
        return principal


_TOKEN_REASONS = {"expired": Reason.TOKEN_EXPIRED, "revoked": Reason.TOKEN_REVOKED}
"""The invalid-token problems a client acts on differently (refresh, log in again); every other
one is TOKEN_INVALID, the problem itself travels as ``token_problem`` metadata."""


def _credentials(metadata: Iterable[tuple[str, str | bytes]]) -> tuple[str, str]:
    """(kind, token) from the metadata: the service token if any, else the bearer token."""
    bearer: str | bytes | None = None
    service_token: str | bytes | None = None
    for key, value in metadata:
        if key == SERVICE_TOKEN_HEADER:
            service_token = value
        elif key == "authorization":
            bearer = value
    if service_token is not None:
        return "service", _text(service_token)
    if bearer is not None:
        scheme, _, token = _text(bearer).partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "authorization must be 'Bearer <token>'", reason=Reason.TOKEN_INVALID
            )
        return "user", token.strip()
    raise Unauthenticated(
        "missing credentials: send 'authorization: Bearer' or x-service-token",
        reason=Reason.CREDENTIALS_MISSING,
    )


def _build_verifier(
    secret: bytes | None,
    key_source: KeySource | None,
    issuer: str | None,
    audience: str | None,
    leeway: float,
    clock: Clock,
    *,
    require_expiry: bool,
) -> Verifier:
    algorithms: list[str] = []
    if secret:
        algorithms.append("HS256")
    if key_source is not None:
        algorithms.extend(a for a in _USER_ASYMMETRIC if a in ASYMMETRIC_ALGORITHMS)
    if not algorithms:
        return _RefuseAll()
    return TokenVerifier(
        _HmacThenKeys(secret, key_source),
        issuer=issuer,
        audience=audience,
        algorithms=algorithms,
        leeway=leeway,
        clock=clock,
        require_expiry=require_expiry,
    )


def _service_token_verifier(
    secret: bytes | None,
    key_source: KeySource | None,
    issuer: str | None,
    audience: str | None,
    leeway: float,
    clock: Clock,
    require_expiry: bool,
) -> Verifier:
    """Issuer-signed service tokens (issuer and audience checked), plus seed HS256 service tokens
    only when a shared secret is deliberately configured (they carry no issuer or audience)."""
    signed = _build_verifier(None, key_source, issuer, audience, leeway, clock, require_expiry=True)
    if not secret:
        return signed
    seed = _build_verifier(secret, None, None, None, leeway, clock, require_expiry=require_expiry)
    return _FirstThatAccepts(signed, seed)


class _FirstThatAccepts:
    """Asks ``primary``; only a token whose algorithm it does not take goes to ``fallback``."""

    def __init__(self, primary: Verifier, fallback: Verifier) -> None:
        self._primary = primary
        self._fallback = fallback

    async def verify(self, token: str, *, expected_type: str | None = None) -> VerifiedToken:
        try:
            return await self._primary.verify(token, expected_type=expected_type)
        except InvalidToken as error:
            if error.reason not in ("algorithm_not_allowed", "unknown_key"):
                raise
        return await self._fallback.verify(token, expected_type=expected_type)


class _RefuseAll:
    """The verifier for a token kind nothing was configured to verify."""

    async def verify(self, token: str, *, expected_type: str | None = None) -> VerifiedToken:
        raise InvalidToken("unknown_key", f"no key is configured for {expected_type} tokens")


def _secret_bytes(secret: Secretish | None) -> bytes | None:
    if secret is None:
        return None
    if isinstance(secret, bytes):
        return secret or None
    if not isinstance(secret, str):
        secret = secret.reveal()
    return secret.encode() or None


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
