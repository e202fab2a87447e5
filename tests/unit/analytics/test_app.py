"""zoptal_analytics.app: what the process is built from in each mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from zoptal_analytics.app import AnalyticsApp
from zoptal_analytics.settings import AnalyticsSettings
app = AnalyticsApp(AnalyticsSettings.from_env({{"DATA_DIR": {data_dir!r}{redis}}}))
print(type(app.realtime).__name__, "redis" in sys.modules)
"""


def _built(tmp_path: Path, redis: str = "") -> str:
    code = PROBE.format(data_dir=str(tmp_path), redis=redis)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_embedded_mode_counts_in_memory_without_importing_redis(tmp_path: Path) -> None:
    assert _built(tmp_path) == "InProcessRealTime False"


def test_with_redis_the_counters_are_shared_through_it(tmp_path: Path) -> None:
    """Built only (a client connects on first use), so no Redis server is needed here."""
    redis = ', "REDIS_URL": "redis://127.0.0.1:1/0"'
    assert _built(tmp_path, redis) == "RedisRealTime True"
