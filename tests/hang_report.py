"""On a pytest-timeout, say where the event loop's tasks are waiting.

pytest-timeout (signal method) dumps every thread's stack, but a hung asyncio test shows only
the loop waiting in ``select``: the coroutine that never finishes is invisible. This adds one
line per pending task, with the innermost frames of its await chain, after that dump. The
signal interrupts the main thread, so the loop it ran is still the running one there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_TASKS = 30
FRAMES_PER_TASK = 3


def await_chain(awaitable: Any) -> list[str]:
    """``file:line function`` of each coroutine ``awaitable`` awaits, outermost first."""
    chain = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            chain.append(f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return chain


def pending_tasks() -> list[str]:
    """One line per pending task of the running loop (none outside one): its innermost frames."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop runs in this thread
        return []
    lines = []
    for task in list(asyncio.all_tasks(loop))[:MAX_TASKS]:
        innermost = await_chain(task.get_coro())[-FRAMES_PER_TASK:]
        lines.append(f"{task.get_name()}: {' -> '.join(innermost) or '(no frame)'}")
    return sorted(lines)


def reporting_tasks(on_timeout: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """``pytest_timeout.timeout_sigalrm`` that also prints the pending tasks after its dump."""

    def on_timeout_with_tasks(item: Any, settings: Any) -> None:
        __tracebackhide__ = True
        try:
            on_timeout(item, settings)
        finally:
            lines = pending_tasks()
            if lines:
                terminal = item.config.get_terminal_writer()
                terminal.sep("+", title="asyncio tasks still pending")
                for line in lines:
                    terminal.line(line)

    return on_timeout_with_tasks
