"""Request checks that name the offending field, gathered so one answer names every one.

Servicers check at the boundary so a client mistake is INVALID_ARGUMENT with the field's path,
never an exception from deep inside a converter or a database driver (``meshcore.timeutil``
converts request Timestamps that way). ``Violations`` gathers the problems of several
independent fields, so one answer names every bad field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType

from meshcore.errors import FieldViolation, InvalidArgument

__all__ = ["Violations"]


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
