"""Input rules from the API contract (protos/zoptal/project/v1/project.proto).

Every failure is ``InvalidArgument`` naming the field, so a client knows what to fix.
"""

from __future__ import annotations

import re
import unicodedata

from meshcore.errors import InvalidArgument
from meshcore.validation import Violations

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "description",
    "identifier",
    "name",
    "optional_identifier",
    "page_and_limit",
    "request_id",
]

MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 2000
MAX_PAGE_LIMIT = 100
DEFAULT_PAGE_LIMIT = 20
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def identifier(field: str, value: str) -> str:
    """A required id: non-empty, at most 64 characters, printable, no surrounding spaces."""
    if not value:
        raise InvalidArgument(field, "is required")
    return optional_identifier(field, value)


def optional_identifier(field: str, value: str) -> str:
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_ID_LENGTH} characters")
    if value != value.strip() or _has_control_characters(value):
        raise InvalidArgument(field, "must not contain spaces around it or control characters")
    return value


def name(field: str, value: str) -> str:
    """A display name: 1 to 100 characters after trimming, no control characters."""
    trimmed = value.strip()
    if not trimmed:
        raise InvalidArgument(field, "is required")
    if len(trimmed) > MAX_NAME_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_NAME_LENGTH} characters")
    if _has_control_characters(trimmed):
        raise InvalidArgument(field, "must not contain control characters")
    return trimmed


def name_key(value: str) -> str:
    """What name uniqueness is decided on: NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", value).casefold()


def description(field: str, value: str) -> str:
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    return value


def request_id(field: str, value: str) -> str | None:
    """An optional client idempotency key: 1 to 128 characters of ``[A-Za-z0-9._:-]``."""
    if not value:
        return None
    if not _REQUEST_ID.fullmatch(value):
        raise InvalidArgument(field, "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")
    return value


def page_and_limit(page: int, limit: int) -> tuple[int, int]:
    """``page`` is 1-based (0 means 1); ``limit`` is 1..100 (0 means 20)."""
    with Violations() as violations:
        if page < 0:
            violations.add("page", "must be 0 or more")
        if limit < 0 or limit > MAX_PAGE_LIMIT:
            violations.add("limit", f"must be between 0 and {MAX_PAGE_LIMIT}")
    return max(page, 1), limit or DEFAULT_PAGE_LIMIT


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf") for char in value)
