"""meshcore.secret_policy: which values may be production secrets, and why the others may not."""

from __future__ import annotations

import base64
import secrets

import pytest
from meshcore.secret_policy import DEV_JWT_SECRET, is_acceptable_secret, secret_problem


@pytest.mark.parametrize(
    "generate",
    [
        lambda: secrets.token_urlsafe(32),
        lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
        lambda: secrets.token_hex(32),
        lambda: "prod-jwt-" + secrets.token_urlsafe(32),
    ],
    ids=["token_urlsafe", "openssl-base64", "hex-64", "labelled"],
)
def test_generated_secrets_are_accepted(generate) -> None:
    """What the docs tell operators to run always passes (1,000 draws each)."""
    values = [generate() for _ in range(1000)]
    refused = [value for value in values if not is_acceptable_secret(value)]
    assert refused == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Zq8#vL2!", "shorter than 32 characters"),
        (DEV_JWT_SECRET, "a sample value published in the repository"),
        ("k8s-dev-service-token-secret-change-me-0123456789abcdef", "too little left"),
        ("zoptal-development-service-token-secret-NOT-FOR-PRODUCTION", "too little left"),
        ("this-is-a-test-example-sample-password-placeholder", "too little left"),
        ("s" * 40, "too little left"),
        ("abcdefghijklmnopqrstuvwxyz0123456789", "too little left"),
        ("a-configured-jwt-secret-that-is-long-enough", "a phrase somebody wrote"),
        ("correct horse battery staple orbit lantern", "a phrase somebody wrote"),
        ("Xk9$" * 10, "low entropy: a short pattern repeated"),
        ("ababababcdcdcdcd" * 2 + "ab", "low entropy"),
    ],
)
def test_weak_values_are_refused_with_a_reason(value: str, reason: str) -> None:
    """Short, published, sample-worded, run-made and patterned values each say what is wrong."""
    problem = secret_problem(value)
    assert problem is not None
    assert problem.startswith(reason)


def test_the_reason_never_quotes_the_value() -> None:
    """The reason goes into error messages and logs."""
    for value in ("hunter2", "Xk9$" * 10, DEV_JWT_SECRET, "s" * 40):
        problem = secret_problem(value)
        assert problem is not None
        assert value not in problem
