"""call_metadata: the metadata intercept_service kept, for the call's own task only."""

from __future__ import annotations

import asyncio
from typing import Any

from meshcore.interceptors.base import call_metadata, set_call_metadata


class Context:
    """A ServicerContext that counts how often its metadata is rebuilt."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata
        self.built = 0

    def invocation_metadata(self) -> Any:
        self.built += 1
        return self._metadata


async def test_the_kept_metadata_is_read_without_asking_the_context() -> None:
    """Every read in the call's task returns what intercept_service kept."""
    kept = (("authorization", "Bearer kept"),)
    context = Context((("authorization", "Bearer rebuilt"),))

    async def call() -> list[Any]:
        set_call_metadata(kept)
        return [call_metadata(context) for _ in range(3)]

    assert await asyncio.create_task(call()) == [kept] * 3
    assert context.built == 0


async def test_a_child_task_does_not_take_its_parents_metadata_for_another_call() -> None:
    """Metadata kept in one task is not handed to a task that copied its context."""
    mine = Context((("x-request-id", "mine"),))
    other = Context((("x-request-id", "other"),))

    async def call() -> tuple[Any, Any, Any]:
        set_call_metadata((("x-request-id", "kept"),))

        async def child() -> Any:
            return call_metadata(other)

        from_child = await asyncio.create_task(child())
        return call_metadata(mine), from_child, call_metadata(other)

    kept, from_child, then_other = await asyncio.create_task(call())
    assert kept == (("x-request-id", "kept"),)
    assert from_child == (("x-request-id", "other"),)
    assert then_other == (("x-request-id", "other"),)


async def test_a_context_claimed_in_a_task_is_still_read_from_its_children() -> None:
    """Once a call's task has read its metadata, its child tasks get the same for that call."""
    context = Context((("x-request-id", "rebuilt"),))
    kept = (("x-request-id", "kept"),)

    async def call() -> Any:
        set_call_metadata(kept)
        call_metadata(context)

        async def child() -> Any:
            return call_metadata(context)

        return await asyncio.create_task(child())

    assert await asyncio.create_task(call()) == kept
    assert context.built == 0
