"""Send requests as domain values, validated by the rules the proto documents.

Each ``validate()`` raises one ``InvalidArgument`` naming every bad field; ``content()`` is what the
idempotency fingerprint covers (everything the caller asked for, nothing the server adds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshcore.errors import InvalidArgument
from meshcore.validation import Violations

from zoptal_notification.models import Channel

__all__ = ["EmailRequest", "PushRequest", "SendRequest", "SmsRequest", "validate_idempotency_key"]

_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# An addr-spec without comments or quoted local parts: what the platform's own mail needs, and
# no CR/LF can slip into a header.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_E164 = re.compile(r"\+[0-9]{8,15}")


def validate_idempotency_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise InvalidArgument("idempotency_key", "required: 1 to 128 characters of [A-Za-z0-9._:-]")


def _max_length(field_name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(field_name, f"at most {limit} characters")


def _validate_map(
    field_name: str, values: Mapping[str, str], *, entries: int, key_len: int, value_len: int
) -> None:
    if len(values) > entries:
        raise InvalidArgument(field_name, f"at most {entries} entries")
    for key, value in values.items():
        if not key or len(key) > key_len:
            raise InvalidArgument(f"{field_name}[{key[:32]!r}]", f"keys are 1 to {key_len} chars")
        if len(value) > value_len:
            raise InvalidArgument(f"{field_name}[{key!r}]", f"at most {value_len} characters")


MAX_SUBJECT_LENGTH = 998
"""RFC 5322's line limit: a subject is one header line."""


def check_subject(field_name: str, subject: str) -> None:
    """A subject fits one header line: a line break would be refused by every delivery attempt
    (and is how header injection starts)."""
    _max_length(field_name, subject, MAX_SUBJECT_LENGTH)
    if "\r" in subject or "\n" in subject:
        raise InvalidArgument(field_name, "must not contain line breaks")


@dataclass(frozen=True)
class EmailRequest:
    to: str
    idempotency_key: str
    user_id: str = ""
    subject: str = ""
    body_text: str = ""
    body_html: str = ""
    template: str = ""
    template_data: Mapping[str, str] = field(default_factory=dict)

    channel = Channel.EMAIL

    def validate(self) -> None:
        with Violations() as violations:
            if len(self.to) > 254 or not _EMAIL.fullmatch(self.to):
                violations.add("to", "expected an email address (addr-spec, at most 254 chars)")
            with violations.check():
                _max_length("user_id", self.user_id, 64)
            with violations.check():
                _validate_map(
                    "template_data", self.template_data, entries=50, key_len=64, value_len=2000
                )
            if self.template:
                for name in ("subject", "body_text", "body_html"):
                    if getattr(self, name):
                        violations.add(name, "must be empty when template is set")
            else:
                if not self.subject:
                    violations.add("subject", "required unless template is set")
                with violations.check():
                    check_subject("subject", self.subject)
                if not self.body_text and not self.body_html:
                    violations.add("body_text", "body_text or body_html is required")
                with violations.check():
                    _max_length("body_text", self.body_text, 100_000)
                with violations.check():
                    _max_length("body_html", self.body_html, 500_000)
            with violations.check():
                validate_idempotency_key(self.idempotency_key)

    def content(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "user_id": self.user_id,
            "subject": self.subject,
            "body_text": self.body_text,
            "body_html": self.body_html,
            "template": self.template,
            "template_data": dict(sorted(self.template_data.items())),
        }


@dataclass(frozen=True)
class SmsRequest:
    to: str
    body: str
    idempotency_key: str
    user_id: str = ""

    channel = Channel.SMS

    def validate(self) -> None:
        with Violations() as violations:
            if not _E164.fullmatch(self.to):
                violations.add("to", "expected an E.164 phone number: + then 8 to 15 digits")
            with violations.check():
                _max_length("user_id", self.user_id, 64)
            if not self.body:
                violations.add("body", "required")
            with violations.check():
                _max_length("body", self.body, 1600)
            with violations.check():
                validate_idempotency_key(self.idempotency_key)

    def content(self) -> dict[str, Any]:
        return {"to": self.to, "user_id": self.user_id, "body": self.body}


@dataclass(frozen=True)
class PushRequest:
    user_id: str
    idempotency_key: str
    device_token: str = ""
    title: str = ""
    body: str = ""
    data: Mapping[str, str] = field(default_factory=dict)

    channel = Channel.PUSH

    def validate(self) -> None:
        with Violations() as violations:
            if not self.user_id:
                violations.add("user_id", "required")
            with violations.check():
                _max_length("user_id", self.user_id, 64)
            with violations.check():
                _max_length("device_token", self.device_token, 4096)
            if not self.title and not self.body:
                violations.add("title", "title or body is required")
            with violations.check():
                _max_length("title", self.title, 200)
            with violations.check():
                _max_length("body", self.body, 4000)
            with violations.check():
                _validate_map("data", self.data, entries=50, key_len=64, value_len=1000)
            with violations.check():
                validate_idempotency_key(self.idempotency_key)

    def content(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "device_token": self.device_token,
            "title": self.title,
            "body": self.body,
            "data": dict(sorted(self.data.items())),
        }


SendRequest = EmailRequest | SmsRequest | PushRequest
