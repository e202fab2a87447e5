"""meshcore's modules import each other without a circle (issue 20).

Every import counts: at module level, inside functions (a lazy import only hides a circle) and
under ``TYPE_CHECKING`` (a type-only import still ties the two modules' designs together). An
import names the deepest meshcore module that exists: ``from meshcore.interceptors.base import
RpcMethod`` is an edge to ``meshcore.interceptors.base``; ``from meshcore.interceptors import
client`` to the submodule ``client`` when there is one, else to the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import meshcore

ROOT = Path(meshcore.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _target(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _target(name) if name.startswith("meshcore") else None
            if target is not None and target != module:
                found.add(target)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_walk_finds_a_circle_when_there_is_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_walk_sees_meshcore_imports() -> None:
    graph = {module: _imports(module, path) for module, path in MODULES.items()}
    assert "meshcore.interceptors.base" in graph["meshcore.interceptors.auth"]
    assert "meshcore.errors" in graph["meshcore.interceptors.errors"]


def test_meshcore_has_no_import_circle() -> None:
    graph = {
        module: {target for target in _imports(module, path) if not module.startswith(target + ".")}
        for module, path in MODULES.items()
    }
    # A module importing its own package (``meshcore.interceptors.auth`` -> the package) is the
    # package's __init__ re-exporting it, not a design circle: left out above.
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
