"""The per-call path: pick a replica, pass its breaker, call with a deadline, maybe retry.

``ServiceCaller`` holds one service's policy; ``UnaryMethod`` is one RPC bound to it (made once
per client, called many times). The path is kept cheap on purpose (a typed client must keep
at least 0.9 of a raw stub's throughput): healthy replicas are a prebuilt tuple, breakers and
registered method callables are dict lookups, and the first attempt runs without the retry
machinery, which is entered only once a call has failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from meshcore.clock import Clock
from meshcore.context import inbound_deadline
from meshcore.discovery.channels import ChannelPool
from meshcore.discovery.instance import ServiceInstance
from meshcore.discovery.registry import ServiceDiscovery
from meshcore.errors import DeadlineExceeded
from meshcore.observability.runtime_metrics import retries_counter
from meshcore.resilience.breaker import CircuitBreaker, is_callee_failure
from meshcore.resilience.budget import RetryBudget
from meshcore.resilience.retry import RetryPolicy, is_unsent, retry_after_failure

__all__ = ["CallerHost", "Metadata", "ServiceCaller", "StreamUnaryMethod", "UnaryMethod"]

Metadata = Sequence[tuple[str, str | bytes]]

FAILURE_LATENCY_PENALTY_SECONDS = 1.0
"""A failed call counts as at least this slow in the latency EWMA. Without it a replica that
fails fast (connection refused) would look like the fastest one and attract p2c traffic."""


class CallerHost(Protocol):
    """What a ``ServiceCaller`` uses of the ``GrpcClientManager`` that made it (named by shape:
    the manager imports this module to build its callers)."""

    @property
    def started(self) -> bool: ...

    @property
    def discovery(self) -> ServiceDiscovery: ...

    @property
    def pool(self) -> ChannelPool: ...

    @property
    def breakers(self) -> Mapping[ServiceInstance, CircuitBreaker]: ...

    def ensure_started(self) -> None: ...

    def breaker_for(self, instance: ServiceInstance) -> CircuitBreaker: ...


class ServiceCaller:
    """Everything one service's calls share: replicas, strategy, breakers, retries, timeout."""

    def __init__(
        self,
        manager: CallerHost,
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
        self.now: Callable[[], float] = clock.monotonic
        self._discovery = manager.discovery
        self._breakers = manager.breakers
        self._breaker_for = manager.breaker_for
        self.connection = manager.pool.connection
        self._retries = retries_counter(service)

    def choose(self) -> tuple[ServiceInstance, CircuitBreaker]:
        """A healthy replica whose breaker admits calls, by the service's strategy.

        When every breaker is open the strategy still picks one, and its breaker raises
        ``CircuitOpenError``: the caller gets a typed UNAVAILABLE without a network round trip.
        """
        manager = self.manager
        if not manager.started:
            manager.ensure_started()
        healthy = self._discovery.healthy_instances(self.service)
        breakers = self._breakers
        if len(healthy) == 1:
            # Nothing to balance (one replica, or one address behind a sidecar or a Service):
            # the strategy would pick it whatever its breaker says, and the breaker decides.
            instance = healthy[0]
            return instance, breakers.get(instance) or self._breaker_for(instance)
        candidates: Sequence[ServiceInstance] = healthy
        for instance in healthy:
            breaker = breakers.get(instance) or self._breaker_for(instance)
            if not breaker.allows_request():
                admitted = [i for i in healthy if self._breaker_for(i).allows_request()]
                candidates = admitted or healthy
                break
        instance = self._discovery.pick(self.service, candidates, self.strategy)
        return instance, breakers.get(instance) or self._breaker_for(instance)

    def deadline(self, timeout_ms: float | None) -> float:
        """Absolute deadline: the call's timeout, capped by the inbound call's deadline."""
        seconds = self.timeout_seconds if timeout_ms is None else timeout_ms / 1000.0
        deadline = self.now() + seconds
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

    async def retry_failed(
        self,
        attempt: Callable[[], Awaitable[Any]],
        error: Exception,
        retry_on: Callable[[BaseException], bool],
        deadline: float,
    ) -> Any:
        """Continue a call whose first attempt failed (standalone mode only)."""
        policy = self.retry
        if policy is None:
            raise error
        retries = self._retries

        def counted_attempt() -> Awaitable[Any]:
            # retry_after_failure calls this only for retries: the first attempt ran inline.
            retries.inc()
            return attempt()

        return await retry_after_failure(
            counted_attempt,
            error,
            policy.max_retries,
            policy.base_delay,
            max_delay=policy.max_delay,
            retry_on=retry_on,
            budget=self.budget,
            deadline=deadline,
            clock=self.clock,
        )

    def begin(
        self, deadline: float, path: str
    ) -> tuple[ServiceInstance, CircuitBreaker, int, float, float]:
        """Start one attempt: a replica, its breaker's ticket, the start time and the seconds
        left; raises (having taken nothing) when the breaker refuses or the deadline has passed.
        Every attempt that begins must end with ``finish``."""
        instance, breaker = self.choose()
        ticket = breaker.acquire()
        start = self.now()
        remaining = deadline - start
        if remaining <= 0:
            breaker.on_release(ticket)
            raise DeadlineExceeded(f"deadline passed before calling {path}")
        instance.load.in_flight += 1
        return instance, breaker, ticket, start, remaining

    def finish(
        self,
        instance: ServiceInstance,
        breaker: CircuitBreaker,
        ticket: int,
        start: float,
        error: BaseException | None,
    ) -> None:
        """Account one finished attempt: in-flight count, latency EWMA, breaker verdict."""
        load = instance.load
        load.in_flight -= 1
        now = self.now()
        if error is None:
            load.observe(now - start, now)
            breaker.on_success(ticket)
            return
        elapsed = now - start
        if is_callee_failure(error):
            elapsed = max(elapsed, FAILURE_LATENCY_PENALTY_SECONDS)
        load.observe(elapsed, now)
        breaker.record(ticket, error)


class _Method:
    """One RPC of one service whose calls return one reply: the attempt both shapes share.

    ``_shape`` names the ``Connection`` method (``unary_unary`` or ``stream_unary``) that gives
    the shape's registered method callable on the chosen replica's channel."""

    __slots__ = ("_caller", "_deserializer", "_serializer", "path")
    _shape: ClassVar[str]

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

    async def _attempt(
        self,
        request_or_iterator: Any,
        deadline: float,
        metadata: Metadata | None,
        retry_on: Callable[[BaseException], bool] | None,
    ) -> Any:
        """One attempt; if it fails with an error ``retry_on`` accepts, the retries follow
        (made with ``retry_on=None``: the retry loop is entered once per call, not nested)."""
        caller = self._caller
        try:
            instance, breaker, ticket, start, remaining = caller.begin(deadline, self.path)
            try:
                rpc = getattr(caller.connection(instance.address), self._shape)(
                    self.path, self._serializer, self._deserializer
                )
                reply = await rpc(request_or_iterator, timeout=remaining, metadata=metadata)
            except BaseException as error:
                caller.finish(instance, breaker, ticket, start, error)
                raise
            caller.finish(instance, breaker, ticket, start, None)
            return reply
        except Exception as error:
            if retry_on is None or not retry_on(error):
                raise
            return await caller.retry_failed(
                lambda: self._attempt(request_or_iterator, deadline, metadata, None),
                error,
                retry_on,
                deadline,
            )


class UnaryMethod(_Method):
    """One unary RPC of one service: ``await method(request, timeout_ms=..., metadata=...)``.

    Retries (standalone mode only) follow the service's ``RetryPolicy``: idempotent methods
    (``idempotency_level`` NO_SIDE_EFFECTS or IDEMPOTENT in the proto) retry on UNAVAILABLE and
    connection failures; the others only when the request provably was never sent. The first
    attempt runs inline; the retry machinery is entered only after a failure.
    """

    __slots__ = ("_retry_on", "idempotent")
    _shape = "unary_unary"

    def __init__(
        self,
        caller: ServiceCaller,
        path: str,
        serializer: Callable[[Any], bytes],
        deserializer: Callable[[bytes], Any],
        *,
        idempotent: bool,
    ) -> None:
        super().__init__(caller, path, serializer, deserializer)
        self.idempotent = idempotent
        retry = caller.retry
        self._retry_on = retry.retry_on_for(idempotent) if retry is not None else None

    def __call__(
        self,
        request: Any,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """The call, to await. Not a coroutine function itself: each coroutine level costs a
        frame on every call, and again every time the call's task waits and resumes."""
        caller = self._caller
        deadline = caller.deadline(timeout_ms)
        budget = caller.budget
        if budget is not None:
            budget.record_call()
        return self._attempt(request, deadline, metadata, self._retry_on)


class StreamUnaryMethod(_Method):
    """One client-streaming RPC: the request stream cannot be replayed, so it is sent once
    (retried only when refused before sending, which consumes nothing from the stream)."""

    __slots__ = ()
    _shape = "stream_unary"

    def __call__(
        self,
        requests: AsyncIterator[Any],
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """The call, to await (not a coroutine function itself, as ``UnaryMethod``)."""
        caller = self._caller
        retry_on = is_unsent if caller.retry is not None else None
        return self._attempt(requests, caller.deadline(timeout_ms), metadata, retry_on)
