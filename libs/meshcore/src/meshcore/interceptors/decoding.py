"""Request decoding owned by meshcore, so a malformed request is the client's mistake.

Left to grpc, a body that does not parse is answered UNKNOWN with the parser's exception text
("Unexpected <class 'google.protobuf.message.DecodeError'> ..."), before any interceptor runs.
meshcore decodes instead and answers INVALID_ARGUMENT naming the message type.

It also refuses U+0000 in any string field, naming the field. PostgreSQL text cannot hold it
(asyncpg raises deep inside a query), no Zoptal API has a use for it, and it is a classic way to
cut strings short in C-based systems. A NUL character is the byte 0x00 in UTF-8, so a request
whose bytes hold no 0x00 (most of them) is cleared by one C-speed scan; only the rest are walked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from meshcore.errors import InvalidArgument

__all__ = ["decode_request", "decode_stream", "nul_field_path"]

Deserializer = Callable[[bytes], Any]


def decode_request(raw: bytes, deserializer: Deserializer | None) -> Any:
    """The decoded request; ``InvalidArgument`` for a body that is not a valid one."""
    if deserializer is None:
        return raw
    try:
        request = deserializer(raw)
    except (DecodeError, ValueError, TypeError) as error:
        raise InvalidArgument("request", f"is not a valid {_type_name(deserializer)}") from error
    if b"\x00" in raw and isinstance(request, Message):
        path = nul_field_path(request)
        if path is not None:
            raise InvalidArgument(path, "must not contain the character U+0000")
    return request


async def decode_stream(
    raw_messages: AsyncIterator[bytes], deserializer: Deserializer | None
) -> AsyncIterator[Any]:
    async for raw in raw_messages:
        yield decode_request(raw, deserializer)


def nul_field_path(message: Message, prefix: str = "") -> str | None:
    """The dotted path of the first string (or map key/value) holding U+0000, if any."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            values = list(value) if _is_repeated(field) else [value]
            for index, text in enumerate(values):
                if "\x00" in text:
                    return f"{path}[{index}]" if _is_repeated(field) else path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            entry_type = field.message_type
            if entry_type is not None and entry_type.GetOptions().map_entry:
                found = _nul_in_map(value, path)
            elif _is_repeated(field):
                found = next(
                    (
                        hit
                        for index, item in enumerate(value)
                        if (hit := nul_field_path(item, f"{path}[{index}].")) is not None
                    ),
                    None,
                )
            else:
                found = nul_field_path(value, f"{path}.")
            if found is not None:
                return found
    return None


def _nul_in_map(entries: Any, path: str) -> str | None:
    for key, item in entries.items():
        if isinstance(key, str) and "\x00" in key:
            return f"{path} (a key)"
        if isinstance(item, str) and "\x00" in item:
            return f"{path}[{key!r}]"
        if isinstance(item, Message):
            found = nul_field_path(item, f"{path}[{key!r}].")
            if found is not None:
                return found
    return None


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _type_name(deserializer: Deserializer) -> str:
    # Generated code hands grpc ``SomeMessage.FromString``: name the message, not the function.
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "message"))
