"""Two narrow kinds of interceptor that a chain can run without nesting a coroutine per layer.

Most interceptors do one of two things:

* **admit** a call or refuse it before the handler runs (call context, auth, rate limit):
  ``AdmissionInterceptor.admit(context, rpc)``, which returns None or an awaitable when it
  must wait (a token not in the cache, a Redis round trip); refusing means raising or aborting;
* **observe** a call from start to finish without changing it (tracing, logging, metrics):
  ``ObservingInterceptor.start(context, rpc, record)`` and ``finish(state, record, context)``,
  with one ``CallRecord`` (status code, duration, message counts, request and response).

Each still *is* a ``ServerInterceptor`` whose ``intercept`` is written once here in terms of
those hooks, so it works on its own. ``InterceptorChain`` goes further and runs a run of them
inside one coroutine (``fused_behavior``): one frame per call instead of one per layer, and one
generator around a response stream instead of one per observer. The order of effects is the
same as nesting them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, NoReturn, Protocol

import grpc.aio

from meshcore.interceptors.base import Behavior, RpcMethod, ServerInterceptor
from meshcore.interceptors.status import final_code, status_code_of

__all__ = [
    "AdmissionInterceptor",
    "CallRecord",
    "ErrorMapper",
    "ObservingInterceptor",
    "fused_behavior",
    "run_observed",
]

Context = grpc.aio.ServicerContext[Any, Any]


class CallRecord:
    """What observers learn about one call; filled in as the call goes."""

    __slots__ = (
        "code",
        "error",
        "messages_received",
        "messages_sent",
        "peer",
        "request",
        "response",
        "rpc",
        "started_at",
    )

    def __init__(self, rpc: RpcMethod, request: Any, peer: str) -> None:
        self.rpc = rpc
        self.started_at = time.perf_counter()
        # Read while the call is live: asking a finished (e.g. cancelled) streaming call for its
        # peer crashes grpc's Cython layer, so observers read it from here, never from context.
        self.peer = peer
        self.request = None if rpc.request_streaming else request
        self.response: Any = None
        self.code = "OK"
        self.error: BaseException | None = None
        self.messages_received = 0 if rpc.request_streaming else 1
        self.messages_sent = 0

    @property
    def duration(self) -> float:
        return time.perf_counter() - self.started_at


class AdmissionInterceptor(ServerInterceptor):
    """Decides before the handler runs; override ``admit``."""

    def admit(self, context: Context, rpc: RpcMethod) -> Awaitable[None] | None:
        """Return None to let the call through (or an awaitable that does); raise to refuse."""
        return None

    async def intercept(
        self, method: Behavior, request_or_iterator: Any, context: Context, rpc: RpcMethod
    ) -> Any:
        pending = self.admit(context, rpc)
        if pending is not None:
            await pending
        return await method(request_or_iterator, context)


class ObservingInterceptor(ServerInterceptor):
    """Watches calls without changing them; override ``start`` and ``finish``."""

    has_start = False
    """Whether the class overrides ``start``: the chain does not call the default one (its
    state is None), one Python call fewer per call and observer."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.has_start = cls.start is not ObservingInterceptor.start

    def start(self, context: Context, rpc: RpcMethod, record: CallRecord) -> Any:
        """Called before the handler; the return value comes back to ``finish``."""
        return None

    def finish(self, state: Any, record: CallRecord, context: Context) -> None:
        """Called once the call has ended (a stream: once it is exhausted or failed)."""

    async def intercept(
        self, method: Behavior, request_or_iterator: Any, context: Context, rpc: RpcMethod
    ) -> Any:
        return await run_observed((), (self,), (), None, method, rpc, request_or_iterator, context)


class ErrorMapper(Protocol):
    """The innermost layer's two operations (``ErrorMappingInterceptor`` has them), for fusing it
    into ``run_observed`` instead of nesting one more coroutine per call."""

    async def abort(self, error: Exception, context: Context, rpc: RpcMethod) -> NoReturn: ...

    def guard_stream(
        self, responses: AsyncIterator[Any], context: Context, rpc: RpcMethod
    ) -> AsyncIterator[Any]: ...


def fused_behavior(
    outer_admissions: Sequence[AdmissionInterceptor],
    observers: Sequence[ObservingInterceptor],
    inner_admissions: Sequence[AdmissionInterceptor],
    inner: Behavior,
    rpc: RpcMethod,
    errors: ErrorMapper | None = None,
) -> Behavior:
    """One coroutine with the effect of nesting, outermost first: ``outer_admissions``,
    ``observers``, ``inner_admissions``, ``errors``, then ``inner``, for calls of ``rpc``."""
    # Everything bound by position: a partial with keywords copies a dict on every call.
    return functools.partial(
        run_observed,
        tuple(outer_admissions),
        tuple(observers),
        tuple(inner_admissions),
        errors,
        inner,
        rpc,
    )


async def run_observed(
    outer: Sequence[AdmissionInterceptor],
    watchers: Sequence[ObservingInterceptor],
    checks: Sequence[AdmissionInterceptor],
    errors: ErrorMapper | None,
    inner: Behavior,
    rpc: RpcMethod,
    request_or_iterator: Any,
    context: Context,
) -> Any:
    """``outer`` around ``watchers`` around ``checks`` around ``errors`` around ``inner``, for
    one call.

    All in this one frame: every coroutine level costs its own frame on each call, and again on
    each suspension and resumption of the call's task.
    """
    for admission in outer:
        pending = admission.admit(context, rpc)
        if pending is not None:
            await pending
    record = None
    if watchers:
        record = CallRecord(rpc, request_or_iterator, context.peer())
        states = []  # a loop, not a list comprehension: that is a function call of its own
        for watcher in watchers:
            states.append(watcher.start(context, rpc, record) if watcher.has_start else None)
        if rpc.request_streaming:
            request_or_iterator = _count_received(request_or_iterator, record)
    try:
        # The checks (auth, rate limit) run inside error mapping too: anything unexpected they
        # raise ends as INTERNAL with a correlation id, not grpc's UNKNOWN "Unexpected <class
        # ...>" (a token nested too deep for json once reached clients that way).
        try:
            for admission in checks:
                pending = admission.admit(context, rpc)
                if pending is not None:
                    await pending
            result = await inner(request_or_iterator, context)
        except Exception as error:
            if errors is None:
                raise
            await errors.abort(error, context, rpc)
        if errors is not None and rpc.response_streaming:
            result = errors.guard_stream(result, context, rpc)
    except BaseException as error:
        if record is not None:
            _finish_failed(watchers, states, record, error, context)
        raise
    if record is None:
        return result
    if rpc.response_streaming:
        return _observe_stream(result, watchers, states, record, context)
    record.messages_sent = 1
    record.response = result
    record.code = final_code(context)
    _finish(watchers, states, record, context)
    return result


def _finish(
    watchers: Sequence[ObservingInterceptor],
    states: list[Any],
    record: CallRecord,
    context: Context,
) -> None:
    # Innermost first, as nested interceptors would see the call end.
    for index in range(len(watchers) - 1, -1, -1):
        watchers[index].finish(states[index], record, context)


def _finish_failed(
    watchers: Sequence[ObservingInterceptor],
    states: list[Any],
    record: CallRecord,
    error: BaseException,
    context: Context,
) -> None:
    """``_finish`` for a call that ``error`` ended."""
    record.code = status_code_of(error, context)
    record.error = error
    try:
        _finish(watchers, states, record, context)
    finally:
        record.error = None  # the error's traceback holds the caller's frame: make no cycle


async def _observe_stream(
    responses: AsyncIterator[Any],
    watchers: Sequence[ObservingInterceptor],
    states: list[Any],
    record: CallRecord,
    context: Context,
) -> AsyncIterator[Any]:
    try:
        async for response in responses:
            record.messages_sent += 1
            yield response
    except BaseException as error:
        _finish_failed(watchers, states, record, error, context)
        raise
    record.code = final_code(context)
    _finish(watchers, states, record, context)


async def _count_received(requests: AsyncIterator[Any], record: CallRecord) -> AsyncIterator[Any]:
    async for request in requests:
        record.messages_received += 1
        yield request
