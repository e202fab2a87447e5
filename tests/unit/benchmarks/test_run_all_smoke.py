"""The benchmark harness runs end to end and never turns a failure into a figure.

No timing is asserted here, ever: speed goals live in benchmarks/run_all.py and docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import Row, render  # noqa: E402 - benchmarks/ is a folder of scripts, not a package

HOST = {
    "date": "2026-01-01 00:00 UTC", "cpu": "test CPU", "cores": 2, "python": "3.11",
    "grpcio": "1", "protobuf": "1", "uvloop": "1", "kernel": "test", "load_average": [0, 0, 0],
}  # fmt: skip


@pytest.mark.timeout(240)
def test_quick_run_of_one_benchmark_writes_its_ratio_with_a_verdict(tmp_path: Path) -> None:
    """`run_all.py --quick --only typed_client` exits 0 and writes the goal row and the machine."""
    output = tmp_path / "benchmarks.md"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick",
         "--only", "typed_client", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=220, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-2000:]
    page = output.read_text()
    row = next(line for line in page.splitlines() if "typed mesh client / raw stub" in line)
    assert "| >= 0.9 |" in row
    assert "| PASS |" in row or "| MISS |" in row
    assert "| cores |" in page
    assert "Smoke run" in page
    assert "| typed_client |" in page


def test_unknown_benchmark_name_is_refused() -> None:
    """A misspelt --only fails loudly instead of silently measuring nothing."""
    finished = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--only", "no_such_bench"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert finished.returncode == 2
    assert "no_such_bench" in finished.stderr


def test_a_benchmark_without_result_is_an_error_row_not_a_figure() -> None:
    """A failed benchmark shows as ERROR with its reason; other rows keep verdict and spread."""
    rows = [
        Row("4", "typed / raw", 0.95, ">=", 0.9),
        Row("3", "p99", 1.4, "<=", 1.3, rounds=(1.9, 1.1, 1.4)),
    ]
    page = render(
        host=HOST,
        outcomes=[
            ("typed_client", 1.0, None, {}),
            ("ingest", 2.0, "RuntimeError: UNAVAILABLE", None),
        ],
        rows=rows,
        quick=False,
        total_seconds=3.0,
    )
    assert "| 4 | typed / raw | >= 0.9 | 0.95 | PASS | - |" in page
    assert "| 3 | p99 | <= 1.3 | 1.40 | MISS | 1.10-1.90 (3) |" in page
    assert "| | ingest | | | ERROR | | no result: RuntimeError: UNAVAILABLE |" in page
    assert "| ingest | 2 | ERROR: RuntimeError: UNAVAILABLE |" in page
