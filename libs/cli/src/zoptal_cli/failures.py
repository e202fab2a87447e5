"""What a failed call says, for people (text) and programs (JSON).

A call fails with a ``zoptal.clients.errors.ApiError`` (the server answered with a status: its
code, message and ``google.rpc`` details) or with a ``meshcore.errors.MeshError`` raised before
anything was sent (every replica's breaker open, the deadline already past). Both become one
``Failure``: the status code's name, the message, and every detail the server gave (stable
reason, field violations, retry delay, resource, correlation id), so a script can act on the
reason and a person sees which field to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshcore.errors import MeshError
from zoptal.clients.errors import ApiError

__all__ = ["Failure", "failure_of"]


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[tuple[str, str], ...] = ()
    retry_after: float | None = None
    resource: tuple[str, str] | None = None
    hint: str = ""
    """What to do about it, when the command knows better than the status (never a secret)."""

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.reason:
            document["reason"] = self.reason
        if self.domain:
            document["domain"] = self.domain
        if self.metadata:
            document["metadata"] = dict(self.metadata)
        if self.field_violations:
            document["field_violations"] = [
                {"field": name, "description": problem} for name, problem in self.field_violations
            ]
        if self.retry_after is not None:
            document["retry_after_seconds"] = self.retry_after
        if self.resource is not None:
            document["resource"] = {"type": self.resource[0], "name": self.resource[1]}
        if self.hint:
            document["hint"] = self.hint
        return document

    def lines(self) -> list[str]:
        lines = [f"{self.code}: {self.message}"]
        if self.reason:
            lines.append(f"  reason: {self.reason}" + (f" ({self.domain})" if self.domain else ""))
        lines.extend(f"  field {name}: {problem}" for name, problem in self.field_violations)
        if self.retry_after is not None:
            lines.append(f"  retry after: {self.retry_after:g} s")
        if self.resource is not None:
            lines.append(f"  resource: {self.resource[0]} {self.resource[1]}")
        lines.extend(f"  {key}: {value}" for key, value in sorted(self.metadata.items()))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return lines


def failure_of(error: ApiError | MeshError, hint: str = "") -> Failure:
    if isinstance(error, MeshError):
        return Failure(
            error.code.name,
            error.message,
            reason=error.reason,
            metadata=dict(error.metadata),
            retry_after=error.retry_after,
            hint=hint,
        )
    resource = error.resource
    return Failure(
        code=error.code().name,
        message=error.details() or "",
        reason=error.reason,
        domain=error.domain,
        metadata=dict(error.metadata),
        field_violations=tuple((v.field, v.problem) for v in error.field_violations),
        retry_after=error.retry_after,
        resource=None if resource is None else (resource.type, resource.name),
        hint=hint,
    )
