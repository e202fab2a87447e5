"""``CallContextInterceptor``: fills ``meshcore.context`` for the call before anything else runs.

* request id: the caller's ``x-request-id`` (bounded in length), else a fresh one;
* inbound deadline: now + ``context.time_remaining()``, on the same clock the client
  interceptors use to shrink downstream timeouts;
* ``traceparent``: kept so it can be forwarded, and logged, even when tracing is off here.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc.aio

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.context import new_request_id
from meshcore.interceptors.base import RpcMethod, served_call
from meshcore.interceptors.hooks import AdmissionInterceptor

__all__ = ["REQUEST_ID_HEADER", "TRACEPARENT_HEADER", "CallContextInterceptor"]

REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"
_MAX_REQUEST_ID_LENGTH = 128


class CallContextInterceptor(AdmissionInterceptor):
    """Outermost: request id, inbound deadline and traceparent into ContextVars."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__()
        self._clock = clock

    def admit(
        self, context: grpc.aio.ServicerContext[Any, Any], rpc: RpcMethod
    ) -> Awaitable[None] | None:
        state, metadata = served_call(context)
        request_id = None
        for key, value in metadata:
            if key == REQUEST_ID_HEADER:
                if isinstance(value, str) and 0 < len(value) <= _MAX_REQUEST_ID_LENGTH:
                    request_id = value
            elif key == TRACEPARENT_HEADER and isinstance(value, str):
                state.traceparent = value
        state.request_id = request_id or new_request_id()
        remaining = context.time_remaining()
        if remaining is not None:
            state.deadline = self._clock.monotonic() + remaining
        return None
