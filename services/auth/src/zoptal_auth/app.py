"""Builds the Auth server: domain objects, servicer, interceptors, the JWKS HTTP endpoint."""

from __future__ import annotations

import asyncio
import logging
from typing import Unpack

import grpc
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.http import HttpResponse, HttpServer, Route
from meshcore.interceptors.chain import (
    AuthOptions,
    ChainOverrides,
    RateLimitOptions,
    build_server_chain,
)
from meshcore.server import ServiceRegistration, ShutdownHook
from meshcore.service_app import ServiceApp
from prometheus_client import REGISTRY
from zoptal.auth.v1 import auth_pb2_grpc

from zoptal_auth import MIGRATIONS_DIR
from zoptal_auth.health import HealthReporter
from zoptal_auth.keys import KeyRing, load_key_ring
from zoptal_auth.login_throttle import InMemoryLoginStore, LoginStore, LoginThrottle
from zoptal_auth.login_throttle_redis import RedisLoginStore
from zoptal_auth.passwords import HashingPool, SecretHasher
from zoptal_auth.revocation import RevocationList, RevocationListCheck
from zoptal_auth.revocation_listing import RevocationListing
from zoptal_auth.service import AuthService
from zoptal_auth.service_accounts import ServiceAccounts
from zoptal_auth.servicer import AuthServicer
from zoptal_auth.settings import AuthSettings
from zoptal_auth.tokens import TokenIssuer
from zoptal_auth.verification import AccessTokenVerifier

__all__ = ["JWKS_PATH", "MIGRATIONS_DIR", "PUBLIC_METHODS", "SERVICE_NAME", "AuthApp", "build_app"]

logger = logging.getLogger(__name__)

SERVICE_NAME = "zoptal.auth.v1.AuthService"
JWKS_PATH = "/.well-known/jwks.json"
# The RPCs that are how a caller gets credentials in the first place, or that anyone may ask.
# Not ValidateToken: it answers who a token belongs to, so it needs a caller (access.py).
PUBLIC_METHODS = tuple(
    f"/{SERVICE_NAME}/{method}"
    for method in (
        "RegisterUser",
        "Login",
        "RefreshToken",
        "IssueServiceToken",
        "GetJwks",
        "HealthCheck",
    )
)

UNLIMITED_METHODS = frozenset(f"/{SERVICE_NAME}/{method}" for method in ("GetJwks", "HealthCheck"))


async def build_app(settings: AuthSettings, *, clock: Clock = SYSTEM_CLOCK) -> AuthApp:
    """``AuthApp`` with its signing keys and password hasher made off the event loop (reading
    key files; the hasher hashes a dummy secret, tens of ms). Opens no connection."""
    keys = await asyncio.to_thread(load_key_ring, settings)
    pool = HashingPool(*settings.hashing_pool_bounds, clock=clock)
    hasher = await asyncio.to_thread(
        SecretHasher,
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        pool=pool,
    )
    return AuthApp(settings, keys, hasher, pool, clock=clock)


class AuthApp(ServiceApp[AuthSettings]):
    """Everything the Auth process owns (``meshcore.service_app``), JWKS over HTTP included.

    Auth has no peers: it trusts its own keys and refuses the tokens its own revocation list
    knows revoked.
    """

    def __init__(
        self,
        settings: AuthSettings,
        keys: KeyRing,
        hasher: SecretHasher,
        pool: HashingPool,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            settings, Database(settings.database_url, application_name="zoptal-auth"), clock=clock
        )
        self.keys = keys
        self._pool = pool
        store: LoginStore = (
            RedisLoginStore.from_url(settings.redis_url, settings.login_throttle_policy)
            if settings.redis_url
            else InMemoryLoginStore(settings.login_throttle_policy)
        )
        self._throttle = LoginThrottle(store, fail_mode=settings.rate_limit_fail_mode, clock=clock)
        verifier = AccessTokenVerifier(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            jwt_secret=settings.jwt_secret.reveal() if settings.jwt_secret else None,
            leeway=settings.jwt_leeway_seconds,
            clock=clock,
            cache_size=settings.validation_cache_size,
        )
        issuer = TokenIssuer(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_ttl=settings.access_token_ttl_seconds,
            service_ttl=settings.service_token_ttl_seconds,
            clock=clock,
        )
        self.revocations = RevocationList(
            self.database, clock=clock, sync_interval=settings.revocation_sync_seconds
        )
        self.auth = AuthService(
            database=self.database,
            hasher=hasher,
            throttle=self._throttle,
            issuer=issuer,
            verifier=verifier,
            revocations=self.revocations,
            refresh_ttl=settings.refresh_token_ttl_seconds,
            access_ttl=settings.access_token_ttl_seconds,
            clock=clock,
        )
        self.service_accounts = ServiceAccounts(
            database=self.database, hasher=hasher, issuer=issuer, clock=clock
        )
        health = HealthReporter(self.database, keys, verifier, clock)
        listing = RevocationListing(
            self.database,
            access_ttl=settings.access_token_ttl_seconds,
            leeway=settings.jwt_leeway_seconds,
        )
        servicer = AuthServicer(
            auth=self.auth,
            service_accounts=self.service_accounts,
            keys=keys,
            health=health,
            revocations=listing,
            trusted_proxy_hops=settings.trusted_proxy_hops,
            clock=clock,
            validation_cache_size=settings.validation_cache_size,
        )
        self.registrations = [
            ServiceRegistration(
                servicer, auth_pb2_grpc.add_AuthServiceServicer_to_server, SERVICE_NAME
            )
        ]
        self.dependency_checks["signing_key"] = health.check_signing_key
        self.jwks_http = HttpServer(
            settings.grpc_host, settings.auth_http_port, {JWKS_PATH: _jwks_route(keys)}
        )

    def releases(self) -> list[ShutdownHook]:
        # Stop HTTP, finish a revocation poll, then the throttle's store and the hashing threads.
        return [self.jwks_http.stop, self.revocations.close, self._throttle.close, self._pool.close]

    async def prepare(self) -> None:
        """Make sure the bootstrap admin exists, then serve JWKS over HTTP."""
        settings = self.settings
        if settings.auth_bootstrap_admin_email and settings.auth_bootstrap_admin_password:
            await self.auth.ensure_admin(
                settings.auth_bootstrap_admin_email,
                settings.auth_bootstrap_admin_password.reveal(),
            )
            logger.info("bootstrap admin %s is present", settings.auth_bootstrap_admin_email)
        port = await self.jwks_http.start()
        logger.info("JWKS on http://%s:%d%s", settings.grpc_host, port, JWKS_PATH)

    def interceptors(self, **test: Unpack[ChainOverrides]) -> list[grpc.aio.ServerInterceptor]:
        """The production chain, trusting this service's keys directly (no HTTP round trip to
        ourselves for the JWKS).

        Every RPC is limited per caller (the principal, else the real client address:
        ``TRUSTED_PROXY_HOPS``), ValidateToken included, except the cheap anonymous reads every
        verifier needs (GetJwks, HealthCheck); Login is throttled further per account and
        client (``login_throttle``). The auth layer refuses tokens this replica knows are
        revoked, as ValidateToken does (verifying a token is not enough: it may have been
        revoked since).
        """
        return build_server_chain(
            self.settings,
            auth=AuthOptions(
                key_source=test.get("key_source", self.keys.verification_keys()),
                excluded_methods=PUBLIC_METHODS,
                revocations=RevocationListCheck(self.revocations),
            ),
            rate_limit=RateLimitOptions(excluded_methods=UNLIMITED_METHODS),
            metrics_registry=test.get("metrics_registry", REGISTRY),
            clock=self.clock,
        )


def _jwks_route(keys: KeyRing) -> Route:
    def jwks() -> HttpResponse:
        # Read per request: the current key (listed first) changes when a published key's
        # time comes. Verifiers cache keys; a rotated-in key is published long before it signs
        # (zoptal_auth.keys), so five minutes of caching never hides a key in use.
        return HttpResponse(
            200,
            keys.jwks_json.encode(),
            "application/json",
            headers={"Cache-Control": "public, max-age=300"},
        )

    return jwks
