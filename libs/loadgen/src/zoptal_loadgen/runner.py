"""The schedule: journeys started at a fixed rate (open loop), at most ``concurrency`` at once.

Open loop: a journey starts every ``1 / rate`` seconds whether or not earlier ones finished, as
users arrive independently of the platform's speed (a closed loop would slow down with the
platform and hide its latency). When ``concurrency`` journeys are already in flight the arrival
is skipped and counted (``skipped.concurrency``), so an overloaded platform shows up in the
report instead of as an unbounded pile of tasks in the generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zoptal_loadgen.journeys import Journeys
from zoptal_loadgen.stats import Recorder

__all__ = ["Schedule", "run_schedule"]

DRAIN_SECONDS = 30.0
"""How long journeys in flight at the end may take before they are cancelled."""


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
    names = list(schedule.mix)
    weights = [schedule.mix[name] for name in names]
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
        task = loop.create_task(journeys.run(random.choices(names, weights)[0]))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        _, late = await asyncio.wait(in_flight, timeout=DRAIN_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    await journeys.clean_up()
    return journeys.recorder.report(loop.time() - interval_start)
