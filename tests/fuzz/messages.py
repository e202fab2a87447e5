"""Hypothesis strategies for any protobuf message, built from its descriptor.

Values lean towards what breaks servers: empty, huge, unicode and control-character strings,
SQL and path fragments, negative and extreme numbers, unknown enum values, timestamps outside
0001-9999 and nanos outside 0..999,999,999, deep nesting and long repeated fields. ``known``
strings (real ids of the running platform) are mixed in so fuzzing reaches past "not found".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

__all__ = ["message_strategy", "strings"]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_SINT64: INT64,
    FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32,
    FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64,
    FieldDescriptor.TYPE_FIXED64: UINT64,
}
NASTY_STRINGS = (
    "",
    " ",
    "\x00",
    "\t\r\n",
    "\u202e\u200b\ufeff",
    "😀" * 64,
    "' OR '1'='1' --",
    "../../../../etc/passwd",
    "%s%s%s%n",
    "{0}{1}{__class__}",
    "<script>alert(1)</script>",
    "00000000-0000-0000-0000-000000000000",
    "-1",
    "9" * 40,
    "a" * 256,
    "user@example.com",
    "NaN",
)
# Proto strings must be valid UTF-8: surrogates cannot be serialised at all.
_CHARACTERS = st.characters(codec="utf-8")


def strings(known: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """Short and huge text, nasty constants and (when given) real ids of the platform."""
    choices: list[st.SearchStrategy[str]] = [
        st.text(_CHARACTERS, max_size=40),
        st.sampled_from(NASTY_STRINGS),
        st.builds(lambda c, n: c * n, _CHARACTERS, st.sampled_from([1_000, 70_000, 600_000])),
        st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=10),
    ]
    if known:
        choices.append(st.sampled_from(list(known)))
    return st.one_of(*choices)


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, -1, 0, 1, 2**31 - 1, 2**53) if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high), st.integers(-1000, 1000))


def _timestamp(cls: type[Any]) -> st.SearchStrategy[Any]:
    seconds = st.one_of(
        st.integers(0, 4_102_444_800),  # 1970..2100: plausible
        st.sampled_from([-62_135_596_801, 253_402_300_800, INT64[0], INT64[1], -1]),  # outside
        st.integers(*INT64),
    )
    nanos = st.one_of(st.integers(0, 999_999_999), st.sampled_from([-1, 1_000_000_000]))
    return st.builds(lambda s, n: cls(seconds=s, nanos=n), seconds, nanos)


def _scalar(field: FieldDescriptor, text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return text
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=200)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        defined = [value.number for value in field.enum_type.values]
        # proto3 enums are open: any int32 travels, and servers must not trust it.
        return st.one_of(st.sampled_from(defined), _integers(*INT32))
    if kind in _INT_RANGES:
        return _integers(*_INT_RANGES[kind])
    raise NotImplementedError(f"no strategy for field type {kind} ({field.full_name})")


def message_strategy(
    descriptor: Descriptor, known: Sequence[str] = (), depth: int = 0
) -> st.SearchStrategy[Any]:
    """Messages of ``descriptor``'s type with any subset of fields set to hostile values."""
    cls = GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return _timestamp(cls)
    text = strings(known)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        fields[field.name] = _field_value(field, text, known, depth)
    if not fields:
        return st.just(cls())

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        message = cls()
        for name, strategy in fields.items():
            if not draw(st.booleans()):
                continue
            _assign(message, descriptor.fields_by_name[name], draw(strategy))
        return message

    return build()


def _field_value(
    field: FieldDescriptor, text: st.SearchStrategy[str], known: Sequence[str], depth: int
) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = _scalar(field.message_type.fields_by_name["key"], text)
        value_field = field.message_type.fields_by_name["value"]
        value = _single(value_field, text, known, depth + 1)
        return st.dictionaries(key, value, max_size=8)
    single = _single(field, text, known, depth)
    if field.is_repeated:
        many = 0 if depth > 2 else 6
        return st.one_of(st.lists(single, max_size=many), st.lists(single, min_size=0, max_size=1))
    return single


def _single(
    field: FieldDescriptor, text: st.SearchStrategy[str], known: Sequence[str], depth: int
) -> st.SearchStrategy[Any]:
    nested = field.message_type
    if nested is None:
        return _scalar(field, text)
    if depth > 3:
        return st.just(GetMessageClass(nested)())
    return st.deferred(lambda: message_strategy(nested, known, depth + 1))


def _assign(message: Any, field: FieldDescriptor, value: Any) -> None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        target = getattr(message, field.name)
        for key, item in value.items():
            if field.message_type.fields_by_name["value"].message_type is not None:
                target[key].CopyFrom(item)
            else:
                target[key] = item
        return
    if field.is_repeated:
        target = getattr(message, field.name)
        if field.message_type is not None:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
        return
    if field.message_type is not None:
        getattr(message, field.name).CopyFrom(value)
        return
    setattr(message, field.name, value)
