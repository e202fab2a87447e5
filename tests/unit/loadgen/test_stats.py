"""zoptal_loadgen.stats: quantiles and the report."""

from __future__ import annotations

from zoptal_loadgen.stats import Recorder, quantile


def test_quantiles_are_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert [quantile(samples, q) for q in (0.5, 0.9, 0.99, 1.0)] == [50.0, 90.0, 99.0, 100.0]
    assert quantile([7.0], 0.99) == 7.0


def test_the_report_counts_failures_per_rpc_and_overall() -> None:
    recorder = Recorder()
    for seconds in (0.01, 0.02, 0.03):
        recorder.call("GetProject", seconds)
    recorder.call("CreateProject", 0.5, "UNAVAILABLE", "down")
    report = recorder.report(2.0)
    assert report["overall"]["calls"] == 4
    assert report["overall"]["success_rate"] == 0.75
    assert report["overall"]["failure_examples"] == {"UNAVAILABLE": "down"}
    assert report["rpcs"]["GetProject"]["p50_ms"] == 20.0
    assert report["calls_per_second"] == 2.0
