"""What ``build_server_chain`` is told beyond a service's ``ServiceSettings``: one small typed
object per layer that takes more than the settings carry, as the client side takes
``RetryPolicy`` and ``BreakerSettings`` next to its settings.

A field left ``FROM_SETTINGS`` takes its value from the ``ServiceSettings`` handed to
``build_server_chain`` (its variable is named per field); without settings, from
``ServiceSettings``' defaults, except the auth layer's, which then trusts only what its options
give (no JWKS, no issuer or audience check). Any other value wins over the settings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from meshcore.interceptors.rate_limit import FailMode, KeyGenerator, key_by_caller
from meshcore.redaction import DEFAULT_SENSITIVE_FIELDS

if TYPE_CHECKING:
    from meshcore.interceptors.auth import Secretish, Verifier
    from meshcore.interceptors.limiters import RateLimiter
    from meshcore.jwt import KeySource
    from meshcore.revocation import RevocationCheck

__all__ = [
    "FROM_SETTINGS",
    "AuthOptions",
    "FromSettings",
    "LoggingOptions",
    "RateLimitOptions",
    "chosen",
]

T = TypeVar("T")


class FromSettings(enum.Enum):
    """The type of ``FROM_SETTINGS`` (an enum member, so that type checkers narrow it away)."""

    FROM_SETTINGS = "from settings"


FROM_SETTINGS: Final = FromSettings.FROM_SETTINGS


def chosen(value: T | FromSettings, setting: T) -> T:
    """``value``, unless it was left ``FROM_SETTINGS``: then ``setting``."""
    return setting if isinstance(value, FromSettings) else value


@dataclass(frozen=True, kw_only=True)
class AuthOptions:
    """The auth layer (``AuthInterceptor``; the seed's names where it has them)."""

    key_source: KeySource | FromSettings | None = FROM_SETTINGS
    """Keys of asymmetric tokens; from settings: ``RemoteJwks(AUTH_JWKS_URL)`` unless
    ``verifier`` is given."""
    jwt_secret: Secretish | FromSettings | None = FROM_SETTINGS
    """HS256 user-token key (``JWT_SECRET``)."""
    service_token_secret: Secretish | None = None
    """A shared service-token secret: never read from settings, a legacy opt-in (the seed's
    HS256 service tokens) that only this field turns on."""
    issuer: str | FromSettings | None = FROM_SETTINGS
    """``JWT_ISSUER``; None checks no issuer."""
    audience: str | FromSettings | None = FROM_SETTINGS
    """``JWT_AUDIENCE``; None checks no audience."""
    excluded_methods: Iterable[str] = ()
    required_permissions: Mapping[str, Iterable[str]] | None = None
    verifier: Verifier | None = None
    """Verifies user tokens instead of the keys above."""
    service_verifier: Verifier | None = None
    revocations: RevocationCheck | None = None
    """Asked on every authenticated call whether the caller's token was revoked (e.g. a
    started ``meshcore.revocation.RevocationFeed``)."""


@dataclass(frozen=True, kw_only=True)
class RateLimitOptions:
    """The rate-limit layer (``RateLimitInterceptor``; the seed's names)."""

    window_ms: int | FromSettings = FROM_SETTINGS
    """``RATE_LIMIT_WINDOW_MS``."""
    max_requests: int | FromSettings = FROM_SETTINGS
    """``RATE_LIMIT_MAX_REQUESTS``."""
    service_max_requests: int | FromSettings = FROM_SETTINGS
    """``RATE_LIMIT_SERVICE_MAX_REQUESTS``: the budget of each calling platform service."""
    excluded_methods: frozenset[str] = frozenset()
    """Full method names never limited (cheap anonymous reads every caller needs)."""
    key_generator: KeyGenerator = key_by_caller
    limiter: RateLimiter | None = None
    """A limiter of the caller's, used as is (and closed by the caller)."""
    redis_url: str | FromSettings | None = FROM_SETTINGS
    """``REDIS_URL``: without ``limiter``, a Redis limiter the chain opens and closes; None:
    an in-process one."""
    fail_mode: FailMode | FromSettings = FROM_SETTINGS
    """``RATE_LIMIT_FAIL_MODE``: what a call gets when Redis cannot be asked."""


@dataclass(frozen=True, kw_only=True)
class LoggingOptions:
    """The logging layer (``LoggingInterceptor``; the seed's names)."""

    log_level: str | int | FromSettings = FROM_SETTINGS
    """``LOG_LEVEL``."""
    log_requests: bool = False
    log_responses: bool = False
    log_errors: bool = True
    sensitive_fields: Iterable[str] = DEFAULT_SENSITIVE_FIELDS
