"""Builds the Auth server: domain objects, servicer, interceptors, the JWKS HTTP endpoint."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.db import Database
from meshcore.health import DependencyCheck
from meshcore.http import HttpResponse, HttpServer, Route
from meshcore.interceptors.chain import AuthOptions, RateLimitOptions, build_server_chain
from meshcore.server import MeshServer, ServiceRegistration, ShutdownHook
from zoptal.auth.v1 import auth_pb2_grpc

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
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
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


@dataclass
class AuthApp:
    """Everything a running Auth server is made of; ``server()`` or a test harness serves it."""

    settings: AuthSettings
    database: Database
    keys: KeyRing
    auth: AuthService
    service_accounts: ServiceAccounts
    revocations: RevocationList
    registration: ServiceRegistration
    interceptors: list[grpc.aio.ServerInterceptor]
    dependency_checks: dict[str, DependencyCheck]
    jwks_http: HttpServer
    on_shutdown: list[ShutdownHook] = field(default_factory=list)

    def server(self, clock: Clock = SYSTEM_CLOCK) -> MeshServer:
        server = MeshServer(
            self.settings,
            [self.registration],
            interceptors=self.interceptors,
            dependency_checks=self.dependency_checks,
            on_shutdown=self.on_shutdown,
            clock=clock,
        )
        return server

    async def serve(self) -> None:
        """Serve gRPC and JWKS HTTP until SIGTERM/SIGINT, then shut down gracefully."""
        if self.settings.auth_bootstrap_admin_email and self.settings.auth_bootstrap_admin_password:
            await self.auth.ensure_admin(
                self.settings.auth_bootstrap_admin_email,
                self.settings.auth_bootstrap_admin_password.reveal(),
            )
            logger.info("bootstrap admin %s is present", self.settings.auth_bootstrap_admin_email)
        port = await self.jwks_http.start()
        logger.info("JWKS on http://%s:%d%s", self.settings.grpc_host, port, JWKS_PATH)
        await self.server().serve()


async def build_app(
    settings: AuthSettings,
    *,
    clock: Clock = SYSTEM_CLOCK,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
) -> AuthApp:
    """Wire the service. Opens no connection: the database is reached on first use."""
    keys = await asyncio.to_thread(load_key_ring, settings)
    database = Database(settings.database_url, application_name="zoptal-auth")
    pool = HashingPool(*settings.hashing_pool_bounds, clock=clock)
    # Building the hasher hashes a dummy secret (tens of ms): keep it off the event loop.
    hasher = await asyncio.to_thread(
        SecretHasher,
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        pool=pool,
    )
    store: LoginStore = (
        RedisLoginStore.from_url(settings.redis_url, settings.login_throttle_policy)
        if settings.redis_url
        else InMemoryLoginStore(settings.login_throttle_policy)
    )
    throttle = LoginThrottle(store, fail_mode=settings.rate_limit_fail_mode, clock=clock)
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
    revocations = RevocationList(
        database, clock=clock, sync_interval=settings.revocation_sync_seconds
    )
    auth = AuthService(
        database=database,
        hasher=hasher,
        throttle=throttle,
        issuer=issuer,
        verifier=verifier,
        revocations=revocations,
        refresh_ttl=settings.refresh_token_ttl_seconds,
        access_ttl=settings.access_token_ttl_seconds,
        clock=clock,
    )
    service_accounts = ServiceAccounts(database=database, hasher=hasher, issuer=issuer, clock=clock)
    health = HealthReporter(database, keys, verifier, clock)
    listing = RevocationListing(
        database, access_ttl=settings.access_token_ttl_seconds, leeway=settings.jwt_leeway_seconds
    )
    servicer = AuthServicer(
        auth=auth,
        service_accounts=service_accounts,
        keys=keys,
        health=health,
        revocations=listing,
        trusted_proxy_hops=settings.trusted_proxy_hops,
        clock=clock,
        validation_cache_size=settings.validation_cache_size,
    )
    if interceptors is None:
        interceptors = server_interceptors(settings, keys, clock, revocations=revocations)
    jwks_http = HttpServer(
        settings.grpc_host, settings.auth_http_port, {JWKS_PATH: _jwks_route(keys)}
    )
    return AuthApp(
        settings=settings,
        database=database,
        keys=keys,
        auth=auth,
        service_accounts=service_accounts,
        revocations=revocations,
        registration=ServiceRegistration(
            servicer, auth_pb2_grpc.add_AuthServiceServicer_to_server, SERVICE_NAME
        ),
        interceptors=interceptors,
        dependency_checks={"database": database.ping, "signing_key": health.check_signing_key},
        jwks_http=jwks_http,
        # Hooks run in reverse: stop HTTP, finish a revocation poll, then close the database,
        # the throttle's store and the hashing threads.
        on_shutdown=[
            pool.close,
            throttle.close,
            database.dispose,
            revocations.close,
            jwks_http.stop,
        ],
    )


def server_interceptors(
    settings: AuthSettings,
    keys: KeyRing,
    clock: Clock = SYSTEM_CLOCK,
    *,
    revocations: RevocationList | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """The production chain, trusting this service's keys directly (no HTTP round trip to
    ourselves for the JWKS).

    Every RPC is limited per caller (the principal, else the real client address:
    ``TRUSTED_PROXY_HOPS``), ValidateToken included, except the cheap anonymous reads every
    verifier needs (GetJwks, HealthCheck); Login is throttled further per account and client
    (``login_throttle``). With ``revocations``, the auth layer refuses tokens this replica knows
    are revoked, as ValidateToken does (verifying a token is not enough: it may have been
    revoked since).
    """
    return build_server_chain(
        settings,
        auth=AuthOptions(
            key_source=keys.verification_keys(),
            excluded_methods=PUBLIC_METHODS,
            revocations=RevocationListCheck(revocations) if revocations is not None else None,
        ),
        rate_limit=RateLimitOptions(excluded_methods=UNLIMITED_METHODS),
        clock=clock,
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
