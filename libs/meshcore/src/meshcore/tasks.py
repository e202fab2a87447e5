"""Stopping asyncio tasks without losing the stopper's own cancellation.

The familiar ``task.cancel()`` then ``with suppress(CancelledError): await task`` has a flaw: the
``CancelledError`` it suppresses may be the *caller's* (a shutdown step cancelled by its time
limit), not the task's. The caller then carries on as if nothing had happened, and a time limit
meant to bound a shutdown bounds nothing. ``cancel_and_wait`` waits with ``asyncio.wait``,
which never raises the task's outcome, so only the caller's own cancellation propagates.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (None entries are skipped) and wait until each has ended.

    A task that ends with an error other than its cancellation has that error raised here (the
    first such, in argument order), as awaiting it would. Cancelling the caller while it waits
    raises ``CancelledError`` in the caller, as usual; the tasks stay cancelled.
    """
    pending = [task for task in tasks if task is not None]
    if not pending:
        return
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)
    # Every outcome is retrieved (asyncio would warn of the others), the first error raised.
    errors = [task.exception() for task in pending if not task.cancelled()]
    first = next((error for error in errors if error is not None), None)
    if first is not None:
        raise first
