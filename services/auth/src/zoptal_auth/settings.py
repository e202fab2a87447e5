"""The Auth service's one settings object, read from the environment (docs/conventions.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from meshcore.settings import Secret, ServiceSettings, SettingsError

__all__ = ["AuthSettings"]


@dataclass(frozen=True, kw_only=True)
class AuthSettings(ServiceSettings):
    service_name: ClassVar[str] = "auth"

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
            )
            if getattr(self, name) <= 0
        ]
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
    def keys_dir(self) -> Path:
        """Where development keys are generated and kept."""
        return self.data_dir / "keys"
