"""tests/hang_report.py: on a timeout, each pending task is named with where it waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.hang_report import pending_tasks, reporting_tasks


async def _innermost(stuck: asyncio.Event) -> None:
    await stuck.wait()


async def _outer(stuck: asyncio.Event) -> None:
    await _innermost(stuck)


async def test_a_pending_task_is_named_with_the_frames_it_waits_in() -> None:
    stuck = asyncio.Event()
    task = asyncio.create_task(_outer(stuck), name="stuck-task")
    await asyncio.sleep(0)
    lines = [line for line in pending_tasks() if line.startswith("stuck-task:")]
    stuck.set()
    await task
    assert len(lines) == 1
    frames = lines[0].removeprefix("stuck-task: ").split(" -> ")
    assert [frame.rsplit(" ", 1)[1] for frame in frames] == ["_outer", "_innermost", "wait"]


def test_outside_a_loop_there_is_nothing_to_report() -> None:
    assert pending_tasks() == []


async def test_the_report_follows_the_timeouts_own_and_its_failure_still_raises() -> None:
    printed: list[str] = []

    class Terminal:
        def sep(self, _: str, title: str) -> None:
            printed.append(title)

        def line(self, text: str) -> None:
            printed.append(text)

    class Item:
        class config:
            @staticmethod
            def get_terminal_writer() -> Terminal:
                return Terminal()

    def timeout(item: Any, settings: Any) -> None:
        printed.append("thread stacks")
        raise RuntimeError("Timeout")

    with pytest.raises(RuntimeError, match="Timeout"):  # the timeout's failure still raises
        reporting_tasks(timeout)(Item(), None)
    assert printed[:2] == ["thread stacks", "asyncio tasks still pending"]
    assert any("test_the_report_follows" in line for line in printed[2:])
