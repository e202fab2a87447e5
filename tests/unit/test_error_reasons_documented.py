"""The error reasons the protos and protos/README.md name are exactly those the code can give.

A reason is a stable ``google.rpc.ErrorInfo`` name clients branch on, so a reason documented but
never sent, or sent but never documented, is a broken promise. The code's reasons are the
``StrEnum`` members of ``meshcore.reasons`` (shared) and ``zoptal_<svc>/reasons.py`` (each
service's own), and raise sites use those members, never string literals (checked below), so the
enums are everything that can be sent besides a status code's own name.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from enum import StrEnum
from pathlib import Path

import pytest
from meshcore import errors as mesh_errors
from meshcore.reasons import CROSS_CUTTING, Reason

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos" / "zoptal"
README = ROOT / "protos" / "README.md"

SERVICES = ("auth", "billing", "project", "notification", "analytics")


def _own_reasons(service: str) -> set[str]:
    """The reasons of ``zoptal_<service>/reasons.py``, every enum in it (none without one)."""
    if importlib.util.find_spec(f"zoptal_{service}.reasons") is None:
        return set()
    module = importlib.import_module(f"zoptal_{service}.reasons")
    enums = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, StrEnum) and value is not StrEnum
    ]
    return {member.value for enum in enums for member in enum}


OWN_REASONS = {service: _own_reasons(service) for service in SERVICES}
SHARED = {member.value for member in Reason}

_REASON = re.compile(r"\breason\s+([A-Z][A-Z0-9_]*[A-Z0-9])\b")
_README_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|", re.MULTILINE)
_EVERY_RPC = "Errors every RPC may return"


def _comments(proto: Path) -> str:
    """Every comment of ``proto`` as one text (a reason may wrap onto the next line)."""
    lines = proto.read_text().splitlines()
    text = " ".join(line.strip()[2:] for line in lines if line.strip().startswith("//"))
    return " ".join(text.split())


def _service_comment(proto: Path) -> str:
    """The comment paragraph naming the errors every RPC of the service may return."""
    text = _comments(proto)
    start = text.index(_EVERY_RPC)
    return text[start : text.index("INTERNAL for client input", start)]


def _named_in(proto_service: str) -> set[str]:
    return set(_REASON.findall(_comments(PROTOS / proto_service / "v1" / f"{proto_service}.proto")))


def _readme_reasons() -> set[str]:
    text = README.read_text()
    section = text[text.index("## Error details") : text.index("## Modelling choices")]
    return set(_README_ROW.findall(section))


def test_every_reason_is_upper_snake_case_and_defined_once() -> None:
    for member in Reason:
        assert member.name == member.value
    everything = [*SHARED, *(reason for own in OWN_REASONS.values() for reason in own)]
    for reason in everything:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*[A-Z0-9]", reason)
    assert len(everything) == len(set(everything)), "a service redefines a reason"
    assert all(OWN_REASONS[service] for service in ("auth", "billing", "project"))


def test_the_readme_table_lists_exactly_the_shared_reasons() -> None:
    assert _readme_reasons() == SHARED


@pytest.mark.parametrize("service", SERVICES)
def test_each_proto_names_its_service_reasons_and_only_reasons_it_can_give(service: str) -> None:
    own = OWN_REASONS[service]
    named = _named_in(service)
    assert named - own - SHARED == set(), f"{service}.proto names reasons no code gives"
    assert own - named == set(), f"{service} gives reasons its proto never names"


@pytest.mark.parametrize("service", SERVICES)
def test_each_proto_lists_the_reasons_every_rpc_may_give(service: str) -> None:
    paragraph = _service_comment(PROTOS / service / "v1" / f"{service}.proto")
    assert set(_REASON.findall(paragraph)) == {member.value for member in CROSS_CUTTING}


def test_every_shared_reason_is_given_somewhere() -> None:
    """A shared reason that no RPC comment names (and no interceptor gives) is dead."""
    named_by_rpcs = set().union(*(_named_in(service) for service in SERVICES))
    assert SHARED - CROSS_CUTTING - named_by_rpcs == set()


def _error_classes() -> set[str]:
    return {
        name
        for name, value in vars(mesh_errors).items()
        if isinstance(value, type) and issubclass(value, mesh_errors.MeshError)
    }


def _raised_error_name(call: ast.Call) -> str | None:
    """``InvalidArgument`` for ``InvalidArgument(...)`` and ``InvalidArgument.of(...)``."""
    func = call.func
    if isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def test_raise_sites_name_reasons_by_their_constants_never_by_literals() -> None:
    classes = _error_classes()
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/meshcore/src/**/*.py")]
    literals = []
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and _raised_error_name(node) in classes:
                for keyword in node.keywords:
                    if keyword.arg == "reason" and isinstance(keyword.value, ast.Constant):
                        literals.append(f"{source.relative_to(ROOT)}:{node.lineno}")
    assert literals == []
