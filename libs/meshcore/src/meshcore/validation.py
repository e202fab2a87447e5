"""Checks of request values that every service needs, each naming the offending field.

Servicers call these at the boundary so a client mistake is INVALID_ARGUMENT with the field's
path, never an exception from deep inside a converter or a database driver. ``Violations``
gathers the problems of several independent fields, so one answer names every bad field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType

from google.protobuf.timestamp_pb2 import Timestamp

from meshcore.errors import FieldViolation, InvalidArgument

__all__ = ["MAX_TIMESTAMP_SECONDS", "MIN_TIMESTAMP_SECONDS", "Violations", "timestamp_millis"]

# The range google.protobuf.Timestamp defines: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799


def timestamp_millis(stamp: Timestamp, field: str) -> int:
    """Milliseconds since the epoch, or INVALID_ARGUMENT naming ``field`` when out of range."""
    if not 0 <= stamp.nanos <= 999_999_999:
        raise InvalidArgument(field, "nanos must be between 0 and 999999999")
    if not MIN_TIMESTAMP_SECONDS <= stamp.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument(field, "must be between 0001-01-01 and 9999-12-31")
    return stamp.seconds * 1000 + stamp.nanos // 1_000_000


class Violations:
    """Collects the ``InvalidArgument`` of each independent check and raises them as one.

    ::

        with Violations() as violations:
            with violations.check():
                name = check_name(request.name)
            with violations.check():
                owner = check_owner(request.owner_id)
        use(name, owner)  # reached only when every check passed

    Leaving the outer block raises ``InvalidArgument.of`` every violation found (a lone error
    unchanged, its reason included); any other exception passes through untouched. A check whose
    block failed leaves its variables unset, so a later check must not use them: checks that
    depend on an earlier result go after the outer block.
    """

    def __init__(self) -> None:
        self._errors: list[InvalidArgument] = []

    def __enter__(self) -> Violations:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.raise_any()

    @contextlib.contextmanager
    def check(self) -> Iterator[None]:
        """One independent check: its ``InvalidArgument`` is recorded, not raised."""
        try:
            yield
        except InvalidArgument as error:
            self._errors.append(error)

    def add(self, field: str, problem: str) -> None:
        """Record a problem found inline (without a check function)."""
        self._errors.append(InvalidArgument(field, problem))

    def raise_any(self) -> None:
        """Raise what was recorded so far, if anything."""
        if len(self._errors) == 1:
            raise self._errors[0]
        if self._errors:
            reasons = {error.reason for error in self._errors}
            shared = reasons.pop() if len(reasons) == 1 else None
            found: list[FieldViolation] = [v for error in self._errors for v in error.violations]
            raise InvalidArgument.of(found, reason=shared)
