"""Input rules from billing.proto; every failure is ``InvalidArgument`` naming the field."""

from __future__ import annotations

import re

from meshcore.errors import InvalidArgument

from zoptal_billing.metering import Metric

__all__ = ["idempotency_key", "identifier", "payment_token", "quantity", "scope_for"]

MAX_ID_LENGTH = 64
MAX_PAYMENT_TOKEN_LENGTH = 255
_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def identifier(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_ID_LENGTH} characters")
    if value != value.strip() or not value.isprintable():
        raise InvalidArgument(field, "must not contain spaces around it or control characters")
    return value


def scope_for(metric: Metric, scope_id: str) -> str:
    """``scope_id`` is the project id for per-project metrics and empty for the others."""
    if metric.is_scoped:
        return identifier("scope_id", scope_id)
    if scope_id:
        raise InvalidArgument("scope_id", f"must be empty for {metric.value}")
    return ""


def idempotency_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise InvalidArgument(
            "idempotency_key", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -"
        )
    return value


def payment_token(value: str) -> str:
    """Optional here (whether one is needed depends on the plans); the provider judges it."""
    if len(value) > MAX_PAYMENT_TOKEN_LENGTH:
        raise InvalidArgument(
            "payment_token", f"must be at most {MAX_PAYMENT_TOKEN_LENGTH} characters"
        )
    if value != value.strip() or not value.isprintable():
        raise InvalidArgument(
            "payment_token", "must not contain spaces around it or control characters"
        )
    return value


def quantity(metric: Metric, value: int) -> int:
    """A usage delta: non-zero; negative (a release) only for gauges."""
    if value == 0:
        raise InvalidArgument("quantity", "must not be zero")
    if value < 0 and metric.is_counter:
        raise InvalidArgument("quantity", f"{metric.value} is a counter: it cannot be released")
    return value
