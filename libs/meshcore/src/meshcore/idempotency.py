"""Idempotency keys belong to the caller who sent them.

A key (``event_id``, ``idempotency_key``, ``request_id``) names one request *of one caller*:
services store it next to ``caller_scope(principal)`` and make the pair unique, so another
caller who happens to send the same key gets a record of its own instead of someone else's
(or nothing). The scope is the authenticated principal that made the call: a service calling on
behalf of a user scopes the keys it derives from its own data to itself.
"""

from __future__ import annotations

import hashlib

from meshcore.context import Principal

__all__ = ["CALLER_SCOPE_MAX_LENGTH", "caller_scope"]

CALLER_SCOPE_MAX_LENGTH = 128
"""Width of the column a scope is stored in."""


def caller_scope(principal: Principal) -> str:
    """``principal.key`` (``user:<id>``, ``service:<id>``) when it fits a plain column, else
    ``sha256:<hex>`` of it.

    Subjects are the issuer's to choose (a token signed with ``JWT_SECRET`` may carry any
    string): one too long for the column, or holding control characters, NULs or lone
    surrogates that a database refuses, is stored as its digest. A key always starts with
    ``user:`` or ``service:``, so a digest never equals a plain key.
    """
    key = principal.key
    if len(key) <= CALLER_SCOPE_MAX_LENGTH and key.isascii() and key.isprintable():
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"
