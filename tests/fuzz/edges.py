"""Every scalar field of a request, found by walking its descriptor, and the extremes it admits.

The generated-request fuzzing draws values at random; this is the systematic counterpart: each
scalar field (nested, repeated, map and oneof members and the insides of google.protobuf
Timestamp and Duration included) gets each extreme of its type, one at a time, in an otherwise
valid request. A request class with a new field gets its edges for free.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tests.fuzz.messages import INT32, INT64, UINT32, UINT64

__all__ = [
    "EDGE_STRINGS_ALWAYS",
    "EDGE_STRINGS_SAMPLED",
    "Edge",
    "FieldPath",
    "edges_of",
    "scalar_paths",
]

F = FieldDescriptor
_RANGES = {
    F.TYPE_INT32: INT32,
    F.TYPE_SINT32: INT32,
    F.TYPE_SFIXED32: INT32,
    F.TYPE_INT64: INT64,
    F.TYPE_SINT64: INT64,
    F.TYPE_SFIXED64: INT64,
    F.TYPE_UINT32: UINT32,
    F.TYPE_FIXED32: UINT32,
    F.TYPE_UINT64: UINT64,
    F.TYPE_FIXED64: UINT64,
}
# Beyond each type's own min and max: the values that break conversions and columns.
_INTEGER_EDGES = (-1, 0, 1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63)
# google.protobuf.Timestamp's documented range and one past each end (the wire allows any int64).
_TIMESTAMP_SECONDS = (-62_135_596_801, -62_135_596_800, 253_402_300_799, 253_402_300_800)
_DURATION_SECONDS = (-315_576_000_001, -315_576_000_000, 315_576_000_000, 315_576_000_001)
_NANOS = (-1, 999_999_999, 1_000_000_000, -999_999_999)
_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT_EDGES = (
    float("inf"),
    float("-inf"),
    float("nan"),
    -0.0,
    1e308,
    -1e308,
    5e-324,
    sys.float_info.max,
    -sys.float_info.max,
)
# Sent to every string field: the ones issue 16 names.
EDGE_STRINGS_ALWAYS = (
    "99999999999999999999999.0.0",  # a cursor whose numbers fit no cursor (was INTERNAL)
    "-1",
    "1e400",
    "NaN",
    "0x7fffffffffffffff",
)
# Sampled per string field (test_edge_values says how many).
EDGE_STRINGS_SAMPLED = (
    "",
    "0",
    "Infinity",
    "-Infinity",
    "9223372036854775808",  # 2**63: one past int64
    "-9223372036854775809",
    "18446744073709551616",  # 2**64
    "1" + "0" * 400,
    "http://[::1",  # urlsplit raises ValueError on it (was INTERNAL in every URL field)
    "http://example.com:99999999999999999999/",  # a port past 65535
)
_WELL_KNOWN = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})


@dataclass(frozen=True)
class FieldPath:
    """Where one scalar lives: the fields descended through, then the scalar field itself.

    ``map_part`` is ``"key"`` or ``"value"`` when the last step is a map field (the scalar is
    then one entry's key or value); repeated fields are reached through their first element.
    """

    steps: tuple[FieldDescriptor, ...]
    map_part: str | None = None

    @property
    def scalar(self) -> FieldDescriptor:
        """The descriptor whose type decides the edge values."""
        last = self.steps[-1]
        if self.map_part is not None:
            return _message(last).fields_by_name[self.map_part]
        return last

    @property
    def named(self) -> str:
        """The field an INVALID_ARGUMENT must name: a Timestamp's, not its ``seconds``."""
        if len(self.steps) > 1 and self.container in _WELL_KNOWN:
            return self.steps[-2].name
        return self.steps[-1].name

    @property
    def container(self) -> str | None:
        """The full name of the message holding the scalar (for range edges of well-known types)."""
        return _message(self.steps[-2]).full_name if len(self.steps) > 1 else None

    def __str__(self) -> str:
        parts = []
        for step in self.steps[:-1]:
            parts.append(f"{step.name}[0]" if step.is_repeated else step.name)
        last = self.steps[-1]
        if self.map_part is not None:
            parts.append(f"{last.name}{{{self.map_part}}}")
        else:
            parts.append(f"{last.name}[+]" if last.is_repeated else last.name)
        return ".".join(parts)

    def applied(self, request: Any, value: Any) -> Any:
        """A copy of ``request`` with this scalar set to ``value`` (the request is left as is)."""
        copy = type(request)()
        copy.CopyFrom(request)
        target = copy
        for step in self.steps[:-1]:
            target = getattr(target, step.name)
            if step.is_repeated:
                target = target[0] if len(target) else target.add()
        last = self.steps[-1]
        if self.map_part == "key":
            entries = getattr(target, last.name)
            entries[value] = _plain_value(_message(last).fields_by_name["value"])
        elif self.map_part == "value":
            getattr(target, last.name)["edge"] = value
        elif last.is_repeated:
            getattr(target, last.name).append(value)
        else:
            setattr(target, last.name, value)
        return copy


def _message(field: FieldDescriptor) -> Descriptor:
    """The message type of a field known to hold messages (a step of a path, a map)."""
    assert field.message_type is not None, field.full_name
    return field.message_type


def _plain_value(field: FieldDescriptor) -> Any:
    """An unremarkable value for a map entry whose key is the edge under test."""
    if field.type == F.TYPE_STRING:
        return "x"
    if field.type == F.TYPE_BYTES:
        return b"x"
    if field.type == F.TYPE_BOOL:
        return True
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return 1.0
    return 1


def scalar_paths(
    descriptor: Descriptor, prefix: tuple[FieldDescriptor, ...] = ()
) -> Iterator[FieldPath]:
    """Every scalar field reachable from ``descriptor`` (messages nested in themselves stop)."""
    seen = {_message(step).full_name for step in prefix}
    for field in descriptor.fields:
        nested = field.message_type
        if nested is None:
            yield FieldPath((*prefix, field))
        elif nested.GetOptions().map_entry:
            yield FieldPath((*prefix, field), "key")
            if nested.fields_by_name["value"].message_type is None:
                yield FieldPath((*prefix, field), "value")
            else:
                raise NotImplementedError(f"map of messages ({field.full_name}): walk its values")
        elif nested.full_name not in seen and nested.full_name != descriptor.full_name:
            yield from scalar_paths(nested, (*prefix, field))


@dataclass(frozen=True)
class Edge:
    path: FieldPath
    value: Any

    def __str__(self) -> str:
        shown = repr(self.value)
        return f"{self.path}={shown if len(shown) < 40 else shown[:37] + '...'}"


def _integers(path: FieldPath) -> list[int]:
    low, high = _RANGES[path.scalar.type]
    extra: tuple[int, ...] = ()
    if path.scalar.name == "seconds" and path.container == "google.protobuf.Timestamp":
        extra = _TIMESTAMP_SECONDS
    elif path.scalar.name == "seconds" and path.container == "google.protobuf.Duration":
        extra = _DURATION_SECONDS
    elif path.scalar.name == "nanos" and path.container in _WELL_KNOWN:
        extra = _NANOS
    candidates = (low, high, *_INTEGER_EDGES, *extra)
    return sorted({value for value in candidates if low <= value <= high})


def _enum_values(field: FieldDescriptor) -> list[int]:
    """Unknown values: proto3 enums are open, so any int32 reaches the server."""
    assert field.enum_type is not None
    defined = {value.number for value in field.enum_type.values}
    candidates = (max(defined) + 1, -1, INT32[0], INT32[1])
    return [value for value in candidates if value not in defined]


def edges_of(path: FieldPath) -> list[Any]:
    """The extreme values ``path``'s scalar type admits."""
    kind = path.scalar.type
    if kind == F.TYPE_STRING:
        return [*EDGE_STRINGS_ALWAYS, *EDGE_STRINGS_SAMPLED]
    if kind == F.TYPE_BYTES:
        return [b"", b"\xff" * 16, b"\x00"]
    if kind == F.TYPE_BOOL:
        return [True, False]
    if kind == F.TYPE_ENUM:
        return _enum_values(path.scalar)
    if kind == F.TYPE_DOUBLE:
        return list(_FLOAT_EDGES)
    if kind == F.TYPE_FLOAT:  # a double past float32's range is stored as an infinity
        return [*_FLOAT_EDGES, _FLOAT32_MAX, -_FLOAT32_MAX]
    if kind in _RANGES:
        return _integers(path)
    raise NotImplementedError(f"no edges for field type {kind} ({path})")
