"""zoptal_cli.output: tables."""

from __future__ import annotations

from zoptal_cli.output import table


def test_tables_align_their_columns() -> None:
    assert table(["A", "LONGER"], [["xx", "1"], ["y", "22"]]).splitlines() == [
        "A   LONGER",
        "xx  1",
        "y   22",
    ]
