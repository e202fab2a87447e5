"""Where a running server spends its CPU, by package: py-spy samples summarised.

py-spy reads the process's Python stacks from outside (no change to the server, a few percent of
overhead with ``--nonblocking``); idle samples (the event loop waiting) are left out, so the
shares are shares of the time the process was busy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import package_of

__all__ = ["by_package", "record"]

_FRAME_FILE = "("
# On every stack (the event loop, the server's entry point): no news in an inclusive share.
_EVERYWHERE = {
    "stdlib",
    "builtins / C calls",
    "__main__",
    "zoptal_platform",
    "cli",
}  # a raw frame is "function (path/to/file.py:line)"


def record(pid: int, seconds: float, *, rate: int = 250) -> str | None:
    """Sample ``pid`` for ``seconds``; py-spy's collapsed stacks, or None without py-spy."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return None
    with tempfile.TemporaryDirectory(prefix="py-spy-") as folder:
        out = Path(folder) / "stacks.txt"
        argv = [py_spy, "record", "--pid", str(pid), "--duration", str(max(int(seconds), 1)),
                "--rate", str(rate), "--format", "raw", "--nonblocking", "--full-filenames",
                "--output", str(out)]  # fmt: skip
        finished = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        if finished.returncode != 0 or not out.exists():
            print(f"py-spy failed: {finished.stderr[-500:]}", file=sys.stderr)
            return None
        return out.read_text()


def by_package(stacks: str, top: int = 6) -> dict[str, list[tuple[str, float]]]:
    """Shares (%) of busy samples: ``own`` by the package of the innermost frame, ``inclusive``
    by every package on the stack (a package that calls into another keeps that time too)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in stacks.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        packages = [_package(frame) for frame in stack.split(";") if _FRAME_FILE in frame]
        if not packages:
            continue
        total += count
        own[packages[-1]] += count
        for package in set(packages) - _EVERYWHERE:
            inclusive[package] += count
    if total == 0:
        return {"own": [], "inclusive": []}
    return {
        kind: [(name, round(100.0 * value / total, 1)) for name, value in counts.most_common(top)]
        for kind, counts in (("own", own), ("inclusive", inclusive))
    }


def _package(frame: str) -> str:
    location = frame.split(" (", 1)[1].removesuffix(")")  # generated code: "(<... ()>:2)"
    return package_of(location.rsplit(":", 1)[0])
