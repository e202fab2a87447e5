"""meshcore's package: importing it opens nothing and loads no heavy module."""

from __future__ import annotations

import subprocess
import sys


def test_importing_meshcore_opens_nothing_and_loads_no_heavy_module() -> None:
    """``import meshcore`` starts no thread and imports neither grpc nor SQLAlchemy (fork-safe)."""
    probe = (
        "import sys, threading, meshcore\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('grpc', 'sqlalchemy', 'redis')]\n"
        "assert not heavy, heavy\n"
        "assert meshcore.ServiceSettings.__name__ == 'ServiceSettings'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
