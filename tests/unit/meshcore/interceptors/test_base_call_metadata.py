"""call_metadata: the metadata intercept_service kept, for the call's own ServicerContext only."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from meshcore.context import call_scope, current_call
from meshcore.interceptors.base import ServerInterceptor, call_metadata

METHOD = "/test.v1.Kept/Read"


class Context:
    """A ServicerContext that counts how often its metadata is rebuilt."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata
        self.built = 0

    def invocation_metadata(self) -> Any:
        self.built += 1
        return self._metadata


class Details:
    """The HandlerCallDetails grpc gives intercept_service."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = METHOD
        self.invocation_metadata = metadata


async def _serve_one(kept: Any, context: Context, handler_body: Any) -> Any:
    """What grpc does for one call, in the call's own task: intercept_service, then the
    wrapped handler's entry with the call's ServicerContext."""

    async def body(request: Any, servicer_context: Any) -> Any:
        return await handler_body(servicer_context)

    async def continuation(details: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(body)

    async def call() -> Any:
        wrapped = await ServerInterceptor().intercept_service(continuation, Details(kept))
        return await wrapped.unary_unary(b"", context)

    return await asyncio.create_task(call())


async def test_the_kept_metadata_is_read_without_asking_the_context() -> None:
    """Every read during the call returns what intercept_service kept."""
    kept = (("authorization", "Bearer kept"),)
    context = Context((("authorization", "Bearer rebuilt"),))

    async def body(servicer_context: Any) -> Any:
        return [call_metadata(servicer_context) for _ in range(3)]

    assert await _serve_one(kept, context, body) == [kept] * 3
    assert context.built == 0


async def test_a_task_the_handler_starts_reads_the_same_metadata_for_its_call() -> None:
    kept = (("x-request-id", "kept"),)
    context = Context((("x-request-id", "rebuilt"),))

    async def body(servicer_context: Any) -> Any:
        return await asyncio.create_task(_read(servicer_context))

    assert await _serve_one(kept, context, body) == kept
    assert context.built == 0


async def test_another_calls_context_is_asked_for_its_own_metadata() -> None:
    """The kept metadata is handed out for the call's ServicerContext only."""
    kept = (("x-request-id", "kept"),)
    mine = Context((("x-request-id", "mine"),))
    other = Context((("x-request-id", "other"),))

    async def body(servicer_context: Any) -> Any:
        from_child = await asyncio.create_task(_read(other))
        return call_metadata(servicer_context), from_child, call_metadata(other)

    kept_read, from_child, then_other = await _serve_one(kept, mine, body)
    assert kept_read == kept
    assert from_child == (("x-request-id", "other"),)
    assert then_other == (("x-request-id", "other"),)


async def test_outside_a_served_call_the_context_is_asked() -> None:
    context = Context((("x-request-id", "asked"),))
    assert call_metadata(context) == (("x-request-id", "asked"),)
    with call_scope(request_id="job-1"):
        assert call_metadata(context) == (("x-request-id", "asked"),)
    assert context.built == 2


async def test_each_call_begins_a_state_of_its_own() -> None:
    """A call's state never carries over into the next call, nor out of the call's task."""
    context = Context(())

    async def body(servicer_context: Any) -> Any:
        state = current_call()
        state.request_id = "first"
        return state

    first = await _serve_one((("x-request-id", "a"),), context, body)
    second = await _serve_one((("x-request-id", "b"),), context, body)
    assert first is not second
    assert current_call().request_id is None


async def _read(servicer_context: Any) -> Any:
    return call_metadata(servicer_context)
