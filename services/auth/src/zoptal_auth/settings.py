"""The Auth service's one settings object, read from the environment (docs/conventions.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from meshcore.message_size import KiB
from meshcore.settings import Secret, ServiceSettings, SettingsError

from zoptal_auth.login_throttle import LoginThrottlePolicy
from zoptal_auth.passwords import available_cpus

__all__ = ["AuthSettings"]


@dataclass(frozen=True, kw_only=True)
class AuthSettings(ServiceSettings):
    service_name: ClassVar[str] = "auth"
    largest_request_bytes: ClassVar[int] = 64 * KiB
    """The largest request the API allows, encoded (ValidateToken, RefreshToken and RevokeToken: a
    token of 8192 characters); tests/message_bounds.py computes it."""

    grpc_port: int = 4000
    metrics_port: int = 9400
    auth_http_port: int = 8080
    """Plain HTTP for ``/.well-known/jwks.json`` (Istio RequestAuthentication, RemoteJwks)."""

    jwt_signing_algorithm: Literal["ES256", "EdDSA"] = "ES256"
    """Algorithm of keys generated in development; keys loaded from files bring their own."""
    jwt_signing_key_files: tuple[str, ...] = ()
    """PEM private keys, comma-separated, oldest first: the last one signs, all are published."""
    jwt_signing_key_dir: Path | None = None
    """A folder of ``*.pem`` private keys; the name that sorts last signs, all are published."""

    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    """Absolute lifetime of a login's refresh family: rotation never extends it."""
    service_token_ttl_seconds: int = 300
    """Short: a service renews its token at 80 % of this, and a token stolen off the wire is
    useless soon after (revoking its credential cuts it off before that)."""
    jwt_leeway_seconds: float = 30.0
    validation_cache_size: int = 10_000
    """Verified tokens remembered by ValidateToken (0 turns the cache off)."""

    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    argon2_max_concurrency: int = 0
    """Argon2 computations at once (each ``ARGON2_MEMORY_KIB`` of memory, and one thread per
    lane: ``ARGON2_PARALLELISM`` threads). 0: the CPUs this process may use divided by
    ``ARGON2_PARALLELISM``, at least 1, so that running computations never share a core (two
    that did would each take twice as long). Under a CPU limit (Kubernetes), derive it from the
    limit. With two or more, one client runs on at most all but one of them."""
    argon2_max_queue: int = 16
    """Argon2 computations waiting for a worker; past that a login is RESOURCE_EXHAUSTED at
    once instead of queueing. A waiting one holds no Argon2 memory, only its call; with the
    default per-client share (half), the services' credential exchanges at start-up and a user's
    login from the same host (``make run``) fit together."""
    argon2_max_per_client: int = 0
    """Argon2 computations (running and waiting) of one client; 0: half of
    ``ARGON2_MAX_CONCURRENCY + ARGON2_MAX_QUEUE`` (at least 1)."""

    login_free_failures: int = 5
    """Failed logins of one client on one account before the back-off starts."""
    login_backoff_base_seconds: float = 1.0
    """The first back-off; each further failure doubles it."""
    login_backoff_max_seconds: float = 900.0
    """The longest back-off of one client on one account."""
    login_account_free_failures: int = 50
    """Failed logins on one account, from any client, before the account's back-off starts."""
    login_account_backoff_max_seconds: float = 30.0
    """The longest account-wide back-off: what a distributed attacker can delay the owner by."""
    login_client_max_failures: int = 100
    """Failed logins of one client, across accounts, per ``LOGIN_CLIENT_WINDOW_SECONDS``."""
    login_client_window_seconds: float = 600.0
    login_failure_memory_seconds: float = 3600.0
    """Failures are forgotten this long after the last one."""

    auth_bootstrap_admin_email: str | None = None
    """When set with the password, this user exists and holds the ``admin`` role at start."""
    auth_bootstrap_admin_password: Secret | None = None

    def _validate(self) -> None:
        super()._validate()
        problems = [
            f"{name.upper()}: must be positive"
            for name in (
                "access_token_ttl_seconds",
                "refresh_token_ttl_seconds",
                "service_token_ttl_seconds",
                "revocation_sync_seconds",
                "argon2_time_cost",
                "argon2_memory_kib",
                "argon2_parallelism",
                "login_free_failures",
                "login_backoff_base_seconds",
                "login_backoff_max_seconds",
                "login_account_free_failures",
                "login_account_backoff_max_seconds",
                "login_client_max_failures",
                "login_client_window_seconds",
                "login_failure_memory_seconds",
            )
            if getattr(self, name) <= 0
        ]
        for name in ("argon2_max_concurrency", "argon2_max_queue", "argon2_max_per_client"):
            if getattr(self, name) < 0:
                problems.append(f"{name.upper()}: must be >= 0")
        if self.validation_cache_size < 0:
            problems.append("VALIDATION_CACHE_SIZE: must be >= 0")
        if self.jwt_leeway_seconds < 0:
            problems.append("JWT_LEEWAY_SECONDS: must be >= 0")
        if (self.auth_bootstrap_admin_email is None) != (
            self.auth_bootstrap_admin_password is None
        ):
            problems.append(
                "AUTH_BOOTSTRAP_ADMIN_EMAIL and AUTH_BOOTSTRAP_ADMIN_PASSWORD go together"
            )
        if problems:
            raise SettingsError("invalid auth settings: " + "; ".join(problems))

    def _production_problems(self) -> list[str]:
        problems = super()._production_problems()
        if not self.jwt_signing_key_files and self.jwt_signing_key_dir is None:
            # Generated keys live in one pod's data folder: replicas would disagree and every
            # restart would invalidate every token. Production mounts keys from a secret store.
            problems.append(
                "JWT_SIGNING_KEY_FILES or JWT_SIGNING_KEY_DIR: production loads signing keys "
                "from files (generate one with `python -m zoptal_auth generate-key`)"
            )
        return problems

    @property
    def login_throttle_policy(self) -> LoginThrottlePolicy:
        return LoginThrottlePolicy(
            free_failures=self.login_free_failures,
            backoff_base=self.login_backoff_base_seconds,
            backoff_max=self.login_backoff_max_seconds,
            account_free_failures=self.login_account_free_failures,
            account_backoff_max=self.login_account_backoff_max_seconds,
            client_max_failures=self.login_client_max_failures,
            client_window=self.login_client_window_seconds,
            memory=self.login_failure_memory_seconds,
        )

    @property
    def hashing_pool_bounds(self) -> tuple[int, int, int]:
        """Workers, queue and per-client share of the Argon2 pool."""
        workers = self.argon2_max_concurrency or max(1, available_cpus() // self.argon2_parallelism)
        queue = self.argon2_max_queue
        per_client = self.argon2_max_per_client or max(1, (workers + queue) // 2)
        return workers, queue, per_client

    @property
    def keys_dir(self) -> Path:
        """Where development keys are generated and kept."""
        return self.data_dir / "keys"
