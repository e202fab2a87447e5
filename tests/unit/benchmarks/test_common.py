"""benchmarks/_common.py: which package a profiled frame's file belongs to."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import package_of  # noqa: E402 - benchmarks/ is a folder of scripts, not a package


@pytest.mark.parametrize(
    ("filename", "package"),
    [
        ("/work/main/.venv/lib/python3.11/site-packages/asyncpg/connection.py", "asyncpg"),
        ("/work/main/libs/meshcore/src/meshcore/statements.py", "meshcore"),
        ("/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/runners.py", "stdlib"),
        ("<frozen runpy>", "builtins / C calls"),
        ("\x08\x00", "unreadable"),  # a name py-spy read while it changed
        ("__doc__", "unreadable"),
    ],
)
def test_a_frame_s_file_names_its_package(filename: str, package: str) -> None:
    assert package_of(filename) == package
