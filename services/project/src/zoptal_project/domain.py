"""The values Project's service layer returns (no I/O, no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from meshcore.timeutil import as_utc

from zoptal_project.access import Role
from zoptal_project.models import MemberRow

__all__ = ["Member", "Page", "Project", "ProjectRecord"]

T = TypeVar("T")


class ProjectRecord(Protocol):
    """A stored project as read: an ORM ``ProjectRow`` or a Core row with its columns."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def owner_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def member_count(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    description: str
    owner_id: str
    version: int
    member_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ProjectRecord) -> Project:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            owner_id=row.owner_id,
            version=row.version,
            member_count=row.member_count,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
        )


@dataclass(frozen=True, slots=True)
class Member:
    project_id: str
    user_id: str
    role: Role
    joined_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: MemberRow) -> Member:
        return cls(
            project_id=row.project_id,
            user_id=row.user_id,
            role=Role(row.role),
            joined_at=as_utc(row.joined_at),
            updated_at=as_utc(row.updated_at),
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total_count: int
    page: int
    limit: int
