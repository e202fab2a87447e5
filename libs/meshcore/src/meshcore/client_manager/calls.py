"""The per-call path: pick a replica, pass its breaker, call with a deadline, maybe retry.

``ServiceCaller`` holds one service's policy; ``UnaryMethod`` is one RPC bound to it (made once
per client, called many times). The path is kept cheap on purpose (a typed client must keep
at least 0.9 of a raw stub's throughput): healthy replicas are a prebuilt tuple, breakers and
method callables are dict lookups, and nothing is allocated per call that a raw call would not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from meshcore.clock import Clock
from meshcore.context import inbound_deadline
from meshcore.discovery.instance import ServiceInstance
from meshcore.errors import DeadlineExceeded
from meshcore.resilience.breaker import CircuitBreaker, is_callee_failure
from meshcore.resilience.budget import RetryBudget
from meshcore.resilience.retry import RetryPolicy, is_unsent, retry_with_backoff

if TYPE_CHECKING:
    from meshcore.client_manager.manager import GrpcClientManager

__all__ = ["Metadata", "ServiceCaller", "StreamUnaryMethod", "UnaryMethod"]

Metadata = Sequence[tuple[str, str | bytes]]

FAILURE_LATENCY_PENALTY_SECONDS = 1.0
"""A failed call counts as at least this slow in the latency EWMA. Without it a replica that
fails fast (connection refused) would look like the fastest one and attract p2c traffic."""


class ServiceCaller:
    """Everything one service's calls share: replicas, strategy, breakers, retries, timeout."""

    def __init__(
        self,
        manager: GrpcClientManager,
        service: str,
        *,
        strategy: str,
        retry: RetryPolicy | None,
        budget: RetryBudget | None,
        timeout_seconds: float,
        clock: Clock,
    ) -> None:
        self.manager = manager
        self.service = service
        self.strategy = strategy
        self.retry = retry if retry is not None and retry.max_retries > 0 else None
        self.budget = budget
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self._discovery = manager.discovery
        self._breaker_for = manager.breaker_for

    def choose(self) -> tuple[ServiceInstance, CircuitBreaker]:
        """A healthy replica whose breaker admits calls, by the service's strategy.

        When every breaker is open the strategy still picks one, and its breaker raises
        ``CircuitOpenError``: the caller gets a typed UNAVAILABLE without a network round trip.
        """
        self.manager.ensure_started()
        healthy = self._discovery.healthy_instances(self.service)
        candidates: Sequence[ServiceInstance] = healthy
        breaker_for = self._breaker_for
        for instance in healthy:
            if not breaker_for(instance).allows_request():
                admitted = [i for i in healthy if breaker_for(i).allows_request()]
                candidates = admitted or healthy
                break
        instance = self._discovery.pick(self.service, candidates, self.strategy)
        return instance, breaker_for(instance)

    def deadline(self, timeout_ms: float | None) -> float:
        """Absolute deadline: the call's timeout, capped by the inbound call's deadline."""
        seconds = self.timeout_seconds if timeout_ms is None else timeout_ms / 1000.0
        deadline = self.clock.monotonic() + seconds
        inbound = inbound_deadline()
        if inbound is not None and inbound < deadline:
            return inbound
        return deadline

    def unary(
        self,
        path: str,
        serializer: Callable[[Any], bytes],
        deserializer: Callable[[bytes], Any],
        *,
        idempotent: bool,
    ) -> UnaryMethod:
        return UnaryMethod(self, path, serializer, deserializer, idempotent=idempotent)

    def stream_unary(
        self,
        path: str,
        serializer: Callable[[Any], bytes],
        deserializer: Callable[[bytes], Any],
    ) -> StreamUnaryMethod:
        return StreamUnaryMethod(self, path, serializer, deserializer)


def _finish(
    caller: ServiceCaller,
    instance: ServiceInstance,
    breaker: CircuitBreaker,
    ticket: int,
    start: float,
    error: BaseException | None,
) -> None:
    """Account one finished attempt: in-flight count, latency EWMA, breaker verdict."""
    load = instance.load
    load.in_flight -= 1
    now = caller.clock.monotonic()
    elapsed = now - start
    if error is not None and is_callee_failure(error):
        elapsed = max(elapsed, FAILURE_LATENCY_PENALTY_SECONDS)
    load.observe(elapsed, now)
    breaker.record(ticket, error)


class UnaryMethod:
    """One unary RPC of one service: ``await method(request, timeout_ms=..., metadata=...)``.

    Retries (standalone mode only) follow the service's ``RetryPolicy``: idempotent methods
    (``idempotency_level`` NO_SIDE_EFFECTS or IDEMPOTENT in the proto) retry on UNAVAILABLE and
    connection failures; the others only when the request provably was never sent.
    """

    __slots__ = ("_caller", "_deserializer", "_retry_on", "_serializer", "idempotent", "path")

    def __init__(
        self,
        caller: ServiceCaller,
        path: str,
        serializer: Callable[[Any], bytes],
        deserializer: Callable[[bytes], Any],
        *,
        idempotent: bool,
    ) -> None:
        self._caller = caller
        self.path = path
        self._serializer = serializer
        self._deserializer = deserializer
        self.idempotent = idempotent
        retry = caller.retry
        self._retry_on = retry.retry_on_for(idempotent) if retry is not None else None

    async def __call__(
        self,
        request: Any,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> Any:
        caller = self._caller
        deadline = caller.deadline(timeout_ms)
        retry = caller.retry
        if retry is None or self._retry_on is None:
            return await self._attempt(request, deadline, metadata)
        return await retry_with_backoff(
            lambda: self._attempt(request, deadline, metadata),
            retry.max_retries,
            retry.base_delay,
            max_delay=retry.max_delay,
            retry_on=self._retry_on,
            budget=caller.budget,
            deadline=deadline,
            clock=caller.clock,
        )

    async def _attempt(self, request: Any, deadline: float, metadata: Metadata | None) -> Any:
        caller = self._caller
        instance, breaker = caller.choose()
        ticket = breaker.acquire()
        start = caller.clock.monotonic()
        remaining = deadline - start
        if remaining <= 0:
            breaker.on_release(ticket)
            raise DeadlineExceeded(f"deadline passed before calling {self.path}")
        rpc = caller.manager.pool.connection(instance.address).unary_unary(
            self.path, self._serializer, self._deserializer
        )
        instance.load.in_flight += 1
        try:
            reply = await rpc(request, timeout=remaining, metadata=metadata)
        except BaseException as error:
            _finish(caller, instance, breaker, ticket, start, error)
            raise
        _finish(caller, instance, breaker, ticket, start, None)
        return reply


class StreamUnaryMethod:
    """One client-streaming RPC: the request stream cannot be replayed, so it is sent once
    (retried only when refused before sending, which consumes nothing from the stream)."""

    __slots__ = ("_caller", "_deserializer", "_serializer", "path")

    def __init__(
        self,
        caller: ServiceCaller,
        path: str,
        serializer: Callable[[Any], bytes],
        deserializer: Callable[[bytes], Any],
    ) -> None:
        self._caller = caller
        self.path = path
        self._serializer = serializer
        self._deserializer = deserializer

    async def __call__(
        self,
        requests: AsyncIterator[Any],
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> Any:
        caller = self._caller
        deadline = caller.deadline(timeout_ms)
        if caller.retry is None:
            return await self._attempt(requests, deadline, metadata)
        return await retry_with_backoff(
            lambda: self._attempt(requests, deadline, metadata),
            caller.retry.max_retries,
            caller.retry.base_delay,
            max_delay=caller.retry.max_delay,
            retry_on=is_unsent,
            budget=caller.budget,
            deadline=deadline,
            clock=caller.clock,
        )

    async def _attempt(
        self, requests: AsyncIterator[Any], deadline: float, metadata: Metadata | None
    ) -> Any:
        caller = self._caller
        instance, breaker = caller.choose()
        ticket = breaker.acquire()
        start = caller.clock.monotonic()
        if deadline - start <= 0:
            breaker.on_release(ticket)
            raise DeadlineExceeded(f"deadline passed before calling {self.path}")
        rpc = caller.manager.pool.connection(instance.address).stream_unary(
            self.path, self._serializer, self._deserializer
        )
        instance.load.in_flight += 1
        try:
            reply = await rpc(requests, timeout=deadline - start, metadata=metadata)
        except BaseException as error:
            _finish(caller, instance, breaker, ticket, start, error)
            raise
        _finish(caller, instance, breaker, ticket, start, None)
        return reply
