"""The schedule: journeys started at a fixed rate (open loop), at most ``concurrency`` at once.

Open loop: a journey starts every ``1 / rate`` seconds whether or not earlier ones finished, as
users arrive independently of the platform's speed (a closed loop would slow down with the
platform and hide its latency). Which journey starts is chosen by smooth weighted round robin,
not at random: any stretch of ``sum(weights)`` arrivals holds each journey in proportion to its
weight, so a short run reaches every journey of the mix instead of missing a rare one by chance.

When ``concurrency`` journeys are already in flight the arrival is skipped and counted
(``skipped.concurrency``), so an overloaded platform shows up in the report instead of as an
unbounded pile of tasks in the generator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zoptal_loadgen.journeys import Journeys
from zoptal_loadgen.stats import Recorder

__all__ = ["Schedule", "WeightedRotation", "run_schedule"]

DRAIN_SECONDS = 30.0
"""How long journeys in flight at the end may take before they are cancelled."""


class WeightedRotation:
    """Smooth weighted round robin (as nginx balances upstreams): each pick adds every name's
    weight to its credit and takes the name with the most credit, which then pays the total.
    Over ``sum(weights)`` picks each name is taken ``weight`` times, spread out rather than in
    runs."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self._weights = {name: weight for name, weight in weights.items() if weight > 0}
        if not self._weights:
            raise ValueError("at least one weight must be above 0")
        self._total = sum(self._weights.values())
        self._credit = dict.fromkeys(self._weights, 0.0)

    def next(self) -> str:
        for name, weight in self._weights.items():
            self._credit[name] += weight
        chosen = max(self._credit, key=self._credit.__getitem__)
        self._credit[chosen] -= self._total
        return chosen


@dataclass(frozen=True)
class Schedule:
    rate: float
    """Journeys started per second."""
    duration: float
    """Seconds; 0 runs until ``stop`` is set."""
    concurrency: int
    mix: Mapping[str, float]
    """Journey name -> weight."""
    report_every: float = 0.0
    """Seconds between interim reports (each covers its own interval); 0: none."""


async def run_schedule(
    journeys: Journeys,
    schedule: Schedule,
    stop: asyncio.Event,
    on_interim: Callable[[dict[str, Any]], None] = lambda report: None,
) -> dict[str, Any]:
    """Run the schedule; returns the report of the run (of the last interval with interim
    reports)."""
    loop = asyncio.get_running_loop()
    rotation = WeightedRotation(schedule.mix)
    in_flight: set[asyncio.Task[None]] = set()
    started = interval_start = loop.time()
    next_arrival = started
    end = started + schedule.duration if schedule.duration > 0 else None
    while not stop.is_set():
        now = loop.time()
        if end is not None and now >= end:
            break
        if schedule.report_every and now - interval_start >= schedule.report_every:
            on_interim(journeys.recorder.report(now - interval_start))
            journeys.recorder, interval_start = Recorder(), now
        if now < next_arrival:
            wait = next_arrival - now if end is None else min(next_arrival, end) - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.0))
            continue
        next_arrival += 1.0 / schedule.rate
        if len(in_flight) >= schedule.concurrency:
            journeys.recorder.skipped["concurrency"] += 1
            continue
        task = loop.create_task(journeys.run(rotation.next()))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        _, late = await asyncio.wait(in_flight, timeout=DRAIN_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    await journeys.clean_up()
    return journeys.recorder.report(loop.time() - interval_start)
