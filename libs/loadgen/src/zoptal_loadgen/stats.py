"""Outcomes and latencies of every call, and the report made of them.

Runs are bounded (a duration, or a reporting interval for a long-running generator), so each
RPC keeps its latencies in a plain list and the quantiles are exact (nearest rank over the
sorted samples) rather than estimated by a histogram.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Recorder", "quantile"]

QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


def quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of ascending ``ordered`` (not empty)."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class _Series:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    """``CODE`` or ``CODE/REASON`` -> count."""
    examples: dict[str, str] = field(default_factory=dict)
    """``CODE`` or ``CODE/REASON`` -> the message of its first occurrence."""

    @property
    def calls(self) -> int:
        return len(self.latencies)

    def summary(self) -> dict[str, Any]:
        failed = sum(self.failures.values())
        ordered = sorted(self.latencies)
        document: dict[str, Any] = {
            "calls": self.calls,
            "failed": failed,
            "success_rate": round((self.calls - failed) / self.calls, 4) if self.calls else None,
        }
        for name, q in QUANTILES:
            document[f"{name}_ms"] = round(quantile(ordered, q) * 1000.0, 1) if ordered else None
        if self.failures:
            document["failures"] = dict(self.failures.most_common())
            document["failure_examples"] = dict(self.examples)
        return document


class Recorder:
    """Every call's latency and outcome, per RPC; every journey's outcome, per journey."""

    def __init__(self) -> None:
        self._rpcs: defaultdict[str, _Series] = defaultdict(_Series)
        self._journeys: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.skipped = Counter[str]()
        """Journeys not started: ``concurrency`` (the cap was reached), ``plan_limit``, ..."""

    def call(self, rpc: str, seconds: float, failure: str | None = None, message: str = "") -> None:
        series = self._rpcs[rpc]
        series.latencies.append(seconds)
        if failure is not None:
            series.failures[failure] += 1
            series.examples.setdefault(failure, message)

    def journey(self, name: str, ok: bool) -> None:
        self._journeys[name]["ok" if ok else "failed"] += 1

    def report(self, elapsed_seconds: float) -> dict[str, Any]:
        overall = _Series()
        for series in self._rpcs.values():
            overall.latencies.extend(series.latencies)
            overall.failures.update(series.failures)
            for label, message in series.examples.items():
                overall.examples.setdefault(label, message)
        return {
            "elapsed_seconds": round(elapsed_seconds, 2),
            "calls_per_second": round(overall.calls / elapsed_seconds, 2)
            if elapsed_seconds > 0
            else None,
            "overall": overall.summary(),
            "rpcs": {rpc: self._rpcs[rpc].summary() for rpc in sorted(self._rpcs)},
            "journeys": {name: dict(self._journeys[name]) for name in sorted(self._journeys)},
            "skipped": dict(self.skipped),
        }
