"""Input rules of the Auth API (written on the proto fields); each failure names its field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from meshcore.errors import InvalidArgument

__all__ = [
    "MAX_TOKEN_LENGTH",
    "check_description",
    "check_display_name",
    "check_new_password",
    "check_permissions",
    "check_service_account_name",
    "normalize_email",
    "require_text",
]

MAX_TOKEN_LENGTH = 8192
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
MAX_EMAIL_LENGTH = 254

# A pragmatic addr-spec: dot-atom local part and a dotted DNS domain (no quoted local parts,
# no IP literals: nobody registers with those, and they are a common source of parser bugs).
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SERVICE_ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")
_PERMISSION = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")

# Passwords that attackers try first and that pass the length rule; a real deployment would
# also consult a breach corpus (k-anonymity API), which this reference keeps out of scope.
_COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "qwertyuiopasdf",
        "qwertyuiop123",
        "qwerty123456",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "administrator",
        "changeme1234",
        "trustno1trustno1",
        "correcthorsebatterystaple",
        "abcdefghijkl",
        "abc123abc123",
        "football1234",
        "baseball1234",
        "superman1234",
        "monkey123456",
        "zoptal123456",
        "zoptalpassword",
    }
)


def require_text(field: str, value: str, *, max_length: int) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > max_length:
        raise InvalidArgument(field, f"must be at most {max_length} characters")
    return value


def normalize_email(value: str, *, field: str = "email") -> str:
    """The address in lower case, after checking it is a plausible addr-spec."""
    email = require_text(field, value.strip(), max_length=MAX_EMAIL_LENGTH)
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise InvalidArgument(field, "must be an email address like name@example.com")
    if len(local) > 64 or not _LOCAL_PART.match(local):
        raise InvalidArgument(field, "has an invalid part before '@'")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise InvalidArgument(field, "has an invalid domain")
    if not labels[-1].isalpha() and not labels[-1].lower().startswith("xn--"):
        raise InvalidArgument(field, "has an invalid top-level domain")
    return email.lower()


def check_new_password(password: str, email: str, *, field: str = "password") -> None:
    """Length, common-password and similarity rules (NIST SP 800-63B style: no composition)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")
    folded = password.casefold()
    if folded in _COMMON_PASSWORDS:
        raise InvalidArgument(field, "is a commonly used password")
    if len(set(folded)) < 5:
        raise InvalidArgument(field, "uses too few distinct characters")
    local_part = email.partition("@")[0].casefold()
    if len(local_part) >= 3 and local_part in folded:
        raise InvalidArgument(field, "must not contain the email address")


def check_display_name(value: str, *, field: str = "display_name") -> str:
    name = value.strip()
    if len(name) > 100:
        raise InvalidArgument(field, "must be at most 100 characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidArgument(field, "must not contain control characters")
    return name


def check_service_account_name(value: str, *, field: str = "name") -> str:
    if not _SERVICE_ACCOUNT_NAME.match(value):
        raise InvalidArgument(
            field, "must be 3 to 63 lower-case letters, digits or '-', starting with a letter"
        )
    return value


def check_description(value: str, *, field: str = "description") -> str:
    if len(value) > 1024:
        raise InvalidArgument(field, "must be at most 1024 characters")
    return value


def check_permissions(values: Sequence[str], *, field: str = "permissions") -> list[str]:
    if len(values) > 64:
        raise InvalidArgument(field, "must have at most 64 entries")
    seen: set[str] = set()
    for index, permission in enumerate(values):
        if len(permission) > 64 or not _PERMISSION.match(permission):
            raise InvalidArgument(f"{field}[{index}]", "must look like 'resource:action'")
        if permission in seen:
            raise InvalidArgument(f"{field}[{index}]", f"duplicates {permission!r}")
        seen.add(permission)
    return sorted(seen)
