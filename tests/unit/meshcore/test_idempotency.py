"""caller_scope: the caller an idempotency key belongs to, always storable in its column."""

from __future__ import annotations

import pytest
from meshcore.context import Principal
from meshcore.idempotency import CALLER_SCOPE_MAX_LENGTH, caller_scope


def test_a_plain_principal_is_its_key() -> None:
    assert caller_scope(Principal("ada", "user")) == "user:ada"
    assert caller_scope(Principal("3f2a-billing", "service")) == "service:3f2a-billing"


def test_a_user_and_a_service_with_the_same_subject_are_different_callers() -> None:
    assert caller_scope(Principal("x", "user")) != caller_scope(Principal("x", "service"))


@pytest.mark.parametrize(
    "subject",
    ["a" * 200, "nul\x00inside", "line\nbreak", "caf\u00e9", "lone \ud800 surrogate"],
)
def test_a_subject_a_column_cannot_hold_is_stored_as_a_digest(subject: str) -> None:
    """Too long, control characters, non-ASCII, lone surrogates: a fixed-width digest."""
    scope = caller_scope(Principal(subject, "user"))
    assert scope.startswith("sha256:")
    assert len(scope) <= CALLER_SCOPE_MAX_LENGTH
    assert scope.isascii()
    assert scope.isprintable()
    assert scope == caller_scope(Principal(subject, "user"))  # the same caller every time
    assert scope != caller_scope(Principal(subject, "service"))


def test_the_longest_plain_key_is_kept_as_is() -> None:
    subject = "s" * (CALLER_SCOPE_MAX_LENGTH - len("user:"))
    assert caller_scope(Principal(subject, "user")) == f"user:{subject}"
    assert caller_scope(Principal(subject + "s", "user")).startswith("sha256:")
