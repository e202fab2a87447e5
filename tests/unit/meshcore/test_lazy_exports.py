"""meshcore's lazy export map and its ``TYPE_CHECKING`` imports name the same things.

``meshcore/__init__.py`` says every public name twice: in ``_EXPORTS`` (what ``meshcore.X``
imports at run time) and in the ``if TYPE_CHECKING:`` imports (what type checkers and editors
see). A name added to one and not the other type-checks but fails at run time, or works but is
``Any`` to mypy; this test fails instead.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import meshcore


def _type_checking_imports() -> dict[str, str]:
    """Name -> module of every import under ``if TYPE_CHECKING:`` in meshcore/__init__.py."""
    tree = ast.parse(Path(meshcore.__file__).read_text())
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1, "expected one `if TYPE_CHECKING:` block"
    imported: dict[str, str] = {}
    for statement in blocks[0].body:
        assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
        assert statement.module is not None
        for alias in statement.names:
            # `X as X` is what marks a re-export for mypy; another name would be a different API.
            assert alias.asname == alias.name, f"{alias.name} is imported as {alias.asname}"
            assert alias.name not in imported, f"{alias.name} is imported twice"
            imported[alias.name] = statement.module
    return imported


def test_the_export_map_equals_the_type_checking_imports() -> None:
    type_checking = _type_checking_imports()
    lazy = meshcore._EXPORTS
    assert sorted(set(lazy) - set(type_checking)) == [], "exported lazily, invisible to mypy"
    assert sorted(set(type_checking) - set(lazy)) == [], "seen by mypy, missing at run time"
    moved = {name: (lazy[name], module) for name, module in type_checking.items()}
    assert {name: pair for name, pair in moved.items() if pair[0] != pair[1]} == {}
    assert meshcore.__all__ == sorted(lazy)


def test_every_export_resolves_to_its_module_attribute() -> None:
    for name, module in meshcore._EXPORTS.items():
        assert getattr(meshcore, name) is getattr(importlib.import_module(module), name), name
