"""``--output json|table``: one rendering of every command's result.

Results are plain data (dicts and lists; protobuf messages become dicts with their proto field
names, as ``json_format`` writes them, so the JSON matches the API's own JSON mapping). JSON is
for scripts (stable keys, one document on stdout); a table is for people: a list of objects is
one row each, an object is one ``field  value`` row per field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import click
from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["Output", "emit", "message_data", "table"]

Output = Literal["table", "json"]


def message_data(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return data


def emit(data: Any, output: Output, columns: Sequence[str] | None = None) -> None:
    """Write ``data`` to stdout; ``columns`` picks a list's columns (default: every key)."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    if isinstance(data, Mapping):
        rows = [[key, _cell(value)] for key, value in data.items()]
        click.echo(table(["FIELD", "VALUE"], rows))
        return
    items = list(data)
    if not items:
        click.echo("(none)")
        return
    keys = list(columns or {key: None for item in items for key in item})
    rows = [[_cell(item.get(key, "")) for key in keys] for item in items]
    click.echo(table([key.upper() for key in keys], rows))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
