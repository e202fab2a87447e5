"""Redaction of sensitive values in protobuf messages, mappings and gRPC metadata.

A field is sensitive when its name, lower-cased with ``_`` and ``-`` removed, *contains* one of
the sensitive words (also normalised): ``password`` catches ``new_password`` and
``passwordHash``, ``token`` catches ``refresh_token`` and ``x-service-token``. Over-redacting a
harmless field is cheap; logging one secret is not. Redaction walks messages to any depth,
including repeated fields and maps; the message itself is never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

__all__ = ["DEFAULT_SENSITIVE_FIELDS", "REDACTED", "Redactor"]

REDACTED = "[REDACTED]"
DEFAULT_SENSITIVE_FIELDS = (
    "password",
    "token",
    "authorization",
    "secret",
    "cookie",
    "apikey",
    "privatekey",
    "credential",
)


def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


class Redactor:
    """Masks values whose field or metadata key names look sensitive."""

    def __init__(self, sensitive_fields: Iterable[str] = DEFAULT_SENSITIVE_FIELDS) -> None:
        self._words = tuple(sorted({_normalise(word) for word in sensitive_fields if word}))
        self._verdicts: dict[str, bool] = {}

    def is_sensitive(self, name: str) -> bool:
        verdict = self._verdicts.get(name)
        if verdict is None:
            normalised = _normalise(name)
            verdict = any(word in normalised for word in self._words)
            if len(self._verdicts) < 4096:
                self._verdicts[name] = verdict
        return verdict

    def message(self, message: Any) -> Any:
        """A JSON-ready copy of a protobuf message (or mapping) with sensitive values masked."""
        if isinstance(message, Message):
            as_dict = MessageToDict(message, preserving_proto_field_name=True)
            return self.value(as_dict)
        if isinstance(message, bytes | bytearray):
            return {"bytes": len(message)}
        return self.value(message)

    def value(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                key: REDACTED if self.is_sensitive(str(key)) else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        if isinstance(value, Message):
            return self.message(value)
        return value

    def metadata(self, metadata: Iterable[tuple[str, str | bytes]]) -> dict[str, str]:
        """Metadata as a dict; sensitive keys masked, binary values shown by length only."""
        shown: dict[str, str] = {}
        for key, item in metadata:
            if self.is_sensitive(key):
                shown[key] = REDACTED
            elif isinstance(item, bytes):
                shown[key] = f"<{len(item)} bytes>"
            else:
                shown[key] = item
        return shown
