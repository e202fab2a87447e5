"""What the domain hands back to the servicer: plain frozen values, no ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from meshcore.jwt import VerifiedToken

__all__ = [
    "DependencyReport",
    "IssuedServiceToken",
    "IssuedTokens",
    "NewServiceAccount",
    "ServiceAccountRecord",
    "TokenCheck",
    "UserRecord",
]


@dataclass(frozen=True)
class UserRecord:
    id: str
    email: str
    display_name: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    access_expires_at: float
    refresh_token: str
    refresh_expires_at: float
    user: UserRecord


@dataclass(frozen=True)
class TokenCheck:
    """ValidateToken's verdict: ``verified`` when valid, else a reason from meshcore.jwt."""

    verified: VerifiedToken | None
    reason: str = ""
    detail: str = ""

    @property
    def valid(self) -> bool:
        return self.verified is not None


@dataclass(frozen=True)
class ServiceAccountRecord:
    id: str
    client_id: str
    name: str
    description: str
    permissions: tuple[str, ...]
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class NewServiceAccount:
    account: ServiceAccountRecord
    client_secret: str
    """Shown once, in the CreateServiceAccount response; only its hash is stored."""


@dataclass(frozen=True)
class IssuedServiceToken:
    access_token: str
    expires_at: float
    service_id: str
    service_name: str
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class DependencyReport:
    name: str
    healthy: bool
    detail: str
    latency_seconds: float
