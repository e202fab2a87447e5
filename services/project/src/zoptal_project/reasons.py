"""Project's own ``google.rpc.ErrorInfo`` reasons (shared ones: ``meshcore.reasons``).

project.proto names each RPC's reasons; tests/unit/test_error_reasons_documented.py checks that
the proto and these agree.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["ProjectReason"]


@unique
class ProjectReason(StrEnum):
    NAME_TAKEN = "NAME_TAKEN"
    """ALREADY_EXISTS: the owner already has a project with this name."""
    VERSION_CONFLICT = "VERSION_CONFLICT"
    """ABORTED: the project changed since the version the caller read: re-read, then retry."""
