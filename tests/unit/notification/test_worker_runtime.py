"""The worker's runtime: the pool's threads share one event loop, and a task's context (its
trace span) goes with its async work."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from zoptal_notification.runtime import WorkerRuntime
from zoptal_notification.settings import NotificationSettings

TASK = contextvars.ContextVar("task", default="none")


def test_threads_share_one_loop_and_keep_their_context(tmp_path: Path) -> None:
    runtime = WorkerRuntime(NotificationSettings.from_env({"DATA_DIR": str(tmp_path)}))
    both_running = threading.Barrier(2)

    async def work() -> tuple[int, str]:
        # Both threads' work is on the loop at once: neither waits for the other's to end.
        await asyncio.get_running_loop().run_in_executor(None, both_running.wait, 10)
        return id(asyncio.get_running_loop()), TASK.get()

    def task(name: str) -> tuple[int, str]:
        TASK.set(name)
        return runtime.run(work())

    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(task, ["first", "second"]))
    finally:
        runtime.close()
    assert {loop for loop, _ in results} == {id(runtime.loop)}
    assert [name for _, name in results] == ["first", "second"]
    assert runtime.loop.is_closed()
