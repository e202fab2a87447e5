"""Input rules of the Auth API: every rejection names its field."""

from __future__ import annotations

import pytest
from meshcore.errors import InvalidArgument
from zoptal_auth.validation import (
    check_display_name,
    check_new_password,
    check_permissions,
    check_service_account_name,
    normalize_email,
)


def test_email_is_normalized_to_lower_case():
    """Emails compare case-insensitively because they are stored lower-cased."""
    assert normalize_email("  Alice.Smith+tag@Example.COM ") == "alice.smith+tag@example.com"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "alice",
        "alice@",
        "@example.com",
        "a..b@example.com",
        "alice@example",
        "a@-x.com",
        "alice@exa mple.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
        "a@b.c0m",
    ],
)
def test_bad_emails_are_rejected_naming_the_email_field(email):
    """Malformed addresses are INVALID_ARGUMENT on `email`."""
    with pytest.raises(InvalidArgument) as caught:
        normalize_email(email)
    assert caught.value.field == "email"


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short-pw-1", "at least 12"),
        ("x" * 129, "at most 128"),
        ("Password1234", "commonly used"),
        ("aaaaaaaaaaaaaaaa", "distinct"),
        ("xx-alice.smith-xx", "email"),
    ],
)
def test_weak_passwords_are_rejected_naming_the_password_field(password, problem):
    """Too short, too long, common, repetitive or containing the email: each says why."""
    with pytest.raises(InvalidArgument) as caught:
        check_new_password(password, "alice.smith@example.com")
    assert caught.value.field == "password"
    assert problem in caught.value.problem


def test_a_long_unusual_password_passes():
    """A passphrase of ordinary words is fine: no composition rules (NIST SP 800-63B)."""
    check_new_password("violet tractor harbour 42", "alice@example.com")


def test_display_name_rejects_control_characters_and_length():
    """display_name: at most 100 characters, no control characters."""
    assert check_display_name("  Alice  ") == "Alice"
    for bad in ("x" * 101, "Ali\x00ce"):
        with pytest.raises(InvalidArgument) as caught:
            check_display_name(bad)
        assert caught.value.field == "display_name"


def test_service_account_names_are_dns_labels():
    """Names are 3..63 lower-case letters, digits and '-', starting with a letter."""
    assert check_service_account_name("project-service") == "project-service"
    for bad in ("ab", "Project", "9lives", "a" * 64, "trailing-"):
        with pytest.raises(InvalidArgument):
            check_service_account_name(bad)


def test_permissions_are_checked_one_by_one_with_their_index():
    """A bad or duplicate permission names its position; good ones come back sorted."""
    assert check_permissions(["user:read", "billing:read"]) == ["billing:read", "user:read"]
    with pytest.raises(InvalidArgument) as caught:
        check_permissions(["user:read", "USER READ"])
    assert caught.value.field == "permissions[1]"
    with pytest.raises(InvalidArgument) as caught:
        check_permissions(["user:read", "user:read"])
    assert caught.value.field == "permissions[1]"
