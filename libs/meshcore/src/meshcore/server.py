"""``MeshServer``: one ``grpc.aio`` server with everything a meshcore service needs.

    server = MeshServer(
        settings,
        [ServiceRegistration(AuthServicer(...), auth_pb2_grpc.add_AuthServiceServicer_to_server,
                             "zoptal.auth.v1.AuthService")],
        interceptors=build_server_chain(settings),
        dependency_checks={"database": db.ping},
        on_shutdown=[db.dispose],
    )
    raise SystemExit(run(server.serve()))

It binds ``GRPC_HOST:GRPC_PORT`` (port 0 picks a free port: see ``server.port``) and, with
``MTLS_PORT`` set, ``GRPC_HOST:MTLS_PORT`` requiring client certificates (``mtls_port``), serves
``grpc.health.v1`` (a status per service name and ``""``, NOT_SERVING while a dependency check
fails), server reflection (``v1`` and ``v1alpha``) for every service, and Prometheus ``/metrics``
on ``METRICS_PORT`` (0 disables). ``serve()`` runs until SIGTERM or SIGINT, then shuts down
gracefully:

1. every health status goes NOT_SERVING (load balancers and probes stop sending new calls);
2. ``shutdown_drain_seconds`` pass while the server still accepts calls, so they notice;
3. ``server.stop(shutdown_grace_seconds)``: no new calls, in-flight calls get the grace to finish;
4. the ``on_shutdown`` hooks run in reverse order (database, Redis, trace exporters);
5. ``serve()`` returns, and ``run()`` gives exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from prometheus_client import REGISTRY, CollectorRegistry

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.grpc_options import merged_options
from meshcore.health import HEALTH_SERVICE_NAME, DependencyCheck, HealthMonitor, HealthServicer
from meshcore.http import HttpServer, metrics_routes
from meshcore.message_size import DEFAULT_MAX_RECEIVE_MESSAGE_BYTES, MAX_RESPONSE_BYTES
from meshcore.observability.runtime_metrics import observe_certificates
from meshcore.settings import ServiceSettings, SettingsError
from meshcore.tasks import cancel_and_wait
from meshcore.tls import TlsFiles, server_credentials

__all__ = [
    "DEFAULT_SERVER_OPTIONS",
    "BindError",
    "MeshServer",
    "ServiceRegistration",
    "ShutdownHook",
    "run",
    "run_shutdown_hook",
    "serve",
]

logger = logging.getLogger(__name__)

ShutdownHook = Callable[[], Awaitable[object] | object]

DEFAULT_SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    # The message-size policy (meshcore.message_size): the receive limit bounds what one call
    # can make us buffer; MeshServer replaces it with the service's
    # GRPC_MAX_RECEIVE_MESSAGE_BYTES, sized for the largest request its API allows. Every reply
    # fits the 4 MiB that other stacks read by default: a reply over it is a bug, and is better
    # RESOURCE_EXHAUSTED here than unreadable there.
    ("grpc.max_receive_message_length", DEFAULT_MAX_RECEIVE_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
    # One HTTP/2 connection may carry this many concurrent calls. Envoy (Istio) multiplexes many
    # clients over few connections, so it is generous; a client over the limit queues, not fails.
    ("grpc.max_concurrent_streams", 256),
    # Ping idle clients every 60 s and drop them after 20 s of silence, so calls from vanished
    # peers (a killed pod, a cut network) do not pin resources until TCP gives up (hours).
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # Keepalive enforcement: clients may ping every 10 s or slower, even with no call in flight
    # (meshcore clients keep idle channels warm); faster pingers get GOAWAY after 2 strikes.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", 2),
    # Close each connection after ~5 min (+30 s for its calls to end) so clients reconnect and
    # re-resolve: new replicas get traffic instead of long-lived connections staying put. This is
    # also what ends a unary call whose request stops inside its message: grpc.aio (1.85) never
    # answers one, and no handler (so no interceptor) runs for it (tests/fuzz, framing).
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
    # Never share a port silently with another process: a second server on the same port must
    # fail to bind, not split the traffic (grpc enables SO_REUSEPORT by default on Linux).
    ("grpc.so_reuseport", 0),
)


class BindError(OSError):
    """A port could not be bound (taken, or a bad host): the server cannot start."""


@dataclass(frozen=True)
class ServiceRegistration:
    """One servicer, the generated ``add_<Service>Servicer_to_server`` and the full name."""

    servicer: object
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    name: str
    """Full service name, e.g. ``zoptal.auth.v1.AuthService`` (health and reflection use it)."""


def default_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The error-mapping interceptor alone, when meshcore provides one and none were given."""
    try:
        from meshcore.interceptors.errors import (  # type: ignore[import-not-found,unused-ignore]
            ErrorMappingInterceptor,
        )
    except ImportError:
        return []
    return [ErrorMappingInterceptor()]


class MeshServer:
    """A grpc.aio server with health, reflection, metrics and graceful shutdown.

    ``options`` are grpc server options laid over ``DEFAULT_SERVER_OPTIONS`` and the settings'
    ``grpc_max_receive_message_bytes`` by name (``meshcore.grpc_options``): pass only what
    should differ.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        services: Sequence[ServiceRegistration],
        *,
        interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
        dependency_checks: Mapping[str, DependencyCheck] | None = None,
        on_shutdown: Iterable[ShutdownHook] = (),
        clock: Clock = SYSTEM_CLOCK,
        metrics_registry: object | None = None,
        options: Sequence[tuple[str, Any]] | None = None,
        maximum_concurrent_rpcs: int | None = None,
        check_timeout: float = 5.0,
    ) -> None:
        self.settings = settings
        self.services = list(services)
        self.interceptors = (
            list(interceptors) if interceptors is not None else default_interceptors()
        )
        self.clock = clock
        self.metrics_registry = metrics_registry
        self.options = merged_options(
            DEFAULT_SERVER_OPTIONS,
            [
                ("grpc.max_receive_message_length", settings.grpc_max_receive_message_bytes),
                *(options or ()),
            ],
        )
        self.maximum_concurrent_rpcs = maximum_concurrent_rpcs
        self.health = HealthServicer(service.name for service in self.services)
        self.monitor = HealthMonitor(
            self.health,
            dependency_checks or {},
            interval=settings.health_check_interval_seconds,
            timeout=check_timeout,
            clock=clock,
        )
        self._hooks: list[ShutdownHook] = list(on_shutdown)
        self._grpc: grpc.aio.Server | None = None
        self._metrics: HttpServer | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stopping: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.mtls_port: int | None = None
        """The mutual-TLS port bound (after ``start``), None when ``MTLS_PORT`` is 0."""
        self.metrics_port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def on_shutdown(self, hook: ShutdownHook) -> ShutdownHook:
        """Run ``hook`` on shutdown (hooks run in reverse order of registration)."""
        self._hooks.append(hook)
        return hook

    @property
    def address(self) -> str:
        """``host:port`` actually bound (after ``start``)."""
        if self.port is None:
            raise RuntimeError("the server has not started")
        return self._address_on(self.port)

    @property
    def mtls_address(self) -> str:
        """``host:port`` of the mutual-TLS listener (after ``start``, with ``MTLS_PORT``)."""
        if self.mtls_port is None:
            raise RuntimeError("the server has no mutual-TLS port")
        return self._address_on(self.mtls_port)

    def _address_on(self, port: int) -> str:
        return self.settings.grpc_address.rsplit(":", 1)[0] + f":{port}"

    async def start(self) -> None:
        """Bind, check dependencies once, start serving. Raises ``OSError`` if a port is taken."""
        self._stop_requested = asyncio.Event()
        server = grpc.aio.server(
            interceptors=self.interceptors,
            options=self.options,
            maximum_concurrent_rpcs=self.maximum_concurrent_rpcs,
        )
        for service in self.services:
            service.add_to_server(service.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self._enable_reflection(server)
        address = self.settings.grpc_address
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise BindError(f"cannot bind gRPC {address}: {exc}") from exc
        if port == 0:
            raise BindError(f"cannot bind gRPC {address}")
        self.port = port
        if self.settings.mtls_port:
            try:
                self.mtls_port = self._bind_mtls(server)
            except (BindError, SettingsError):  # unusable certificate files, or a taken port
                await server.stop(None)
                raise
        if self.settings.metrics_port:
            self._observe_certificates()
            self._metrics = HttpServer(
                self.settings.grpc_host,
                self.settings.metrics_port,
                metrics_routes(self.metrics_registry),
            )
            try:
                self.metrics_port = await self._metrics.start()
            except OSError as exc:
                await server.stop(None)
                raise BindError(
                    f"cannot bind metrics {self.settings.grpc_host}:{self.settings.metrics_port}:"
                    f" {exc.strerror or exc}"
                ) from exc
        self._grpc = server
        await server.start()
        # First verdict before anyone asks: SERVING only if every dependency answers.
        await self.monitor.check_now()
        self._monitor_task = asyncio.create_task(self._watch_dependencies(), name="health")
        logger.info(
            "%s serving gRPC on %s (mTLS %s, metrics %s)",
            self.settings.service_name,
            self.address,
            f"on port {self.mtls_port}" if self.mtls_port else "off",
            f"on port {self.metrics_port}" if self.metrics_port else "off",
        )

    def _observe_certificates(self) -> None:
        """Export the expiry of the service's certificate and CA (when it has them)."""
        files = TlsFiles.from_settings(self.settings)
        if files is not None:
            registry = self.metrics_registry
            observe_certificates(
                files, registry if isinstance(registry, CollectorRegistry) else REGISTRY
            )

    def _bind_mtls(self, server: grpc.aio.Server) -> int:
        """The second listener, on the same server (same services, same interceptors).

        grpc python cannot make a client certificate optional on one port (it is required or
        not requested), and GRPC_PORT must keep serving callers without one: users' bearer
        tokens and health probes. Hence two listeners; the chain's peer-binding layer tells
        their calls apart (``meshcore.interceptors.peer_binding``).
        """
        files = TlsFiles.from_settings(self.settings)
        if files is None:  # settings refuse MTLS_PORT without the files; kept for type safety
            raise SettingsError("MTLS_PORT needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE")
        address = self._address_on(self.settings.mtls_port)
        try:
            port = server.add_secure_port(address, server_credentials(files))
        except RuntimeError as exc:
            raise BindError(f"cannot bind mTLS {address}: {exc}") from exc
        if port == 0:
            raise BindError(f"cannot bind mTLS {address}")
        return port

    def request_stop(self) -> None:
        """Ask ``serve()`` to shut down gracefully (what SIGTERM and SIGINT do)."""
        if self._stop_requested is None:
            return
        if self._stop_requested.is_set() and self._grpc is not None:
            logger.warning("second stop request: cancelling in-flight calls now")
            asyncio.get_running_loop().create_task(self._grpc.stop(0))
        self._stop_requested.set()

    async def wait_for_stop_request(self) -> None:
        if self._stop_requested is None:
            raise RuntimeError("the server has not started")
        await self._stop_requested.wait()

    async def serve(self, *, handle_signals: bool = True, freeze_heap: bool = True) -> None:
        """Start (unless already started), run until SIGTERM/SIGINT (or ``request_stop``), then
        shut down gracefully.

        ``freeze_heap``: once started, move every object made so far out of the garbage
        collector's sight (``gc.freeze``). Modules, settings, engines and servicers live as long
        as the process anyway; frozen, they are no longer scanned by the full collections that
        calls keep triggering. On Analytics under load a full collection took about 105 ms
        before and 23 ms after, and the collector's CPU fell by a third. Pass False when the
        process is not the server's alone (a test runner)."""
        if self._grpc is None:
            await self.start()
        if freeze_heap:
            gc.collect()  # what is garbage now must not be frozen for good
            gc.freeze()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
        try:
            await self.wait_for_stop_request()
        finally:
            try:
                await self.stop()
            finally:
                for sig in installed:
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("%s: received %s, shutting down", self.settings.service_name, sig.name)
        self.request_stop()

    async def stop(self) -> None:
        """The graceful shutdown sequence (idempotent: a second call waits for the first)."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._shutdown(), name="shutdown")
        await asyncio.shield(self._stopping)

    async def _shutdown(self) -> None:
        if self._stop_requested is not None:
            self._stop_requested.set()
        await self.health.enter_graceful_shutdown()
        await cancel_and_wait(self._monitor_task)
        drain = self.settings.shutdown_drain_seconds
        try:
            if drain > 0 and self._grpc is not None:
                logger.info("draining for %.1f s before refusing new calls", drain)
                await self.clock.sleep(drain)
            if self._grpc is not None:
                await self._grpc.stop(self.settings.shutdown_grace_seconds)
            if self._metrics is not None:
                await self._metrics.stop()
        finally:
            # No call runs any more: interceptors may let go of what they hold (Redis pools).
            for interceptor in self.interceptors:
                close = getattr(interceptor, "close", None)
                if close is not None:
                    await run_shutdown_hook(close)
            # Even if stopping gRPC failed or was cancelled: release the database, Redis, ...
            for hook in reversed(self._hooks):
                await run_shutdown_hook(hook)
            logger.info("%s stopped", self.settings.service_name)

    async def _watch_dependencies(self) -> None:
        while True:
            await self.clock.sleep(self.monitor.interval)
            await self.monitor.check_now()

    def _enable_reflection(self, server: grpc.aio.Server) -> None:
        from meshcore.reflection import add_reflection

        add_reflection(server, [*(service.name for service in self.services), HEALTH_SERVICE_NAME])


async def serve(
    settings: ServiceSettings,
    servicers: Sequence[ServiceRegistration],
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
    dependency_checks: Mapping[str, DependencyCheck] | None = None,
    on_shutdown: Iterable[ShutdownHook] = (),
    **options: Any,
) -> None:
    """Build a ``MeshServer`` and serve until SIGTERM/SIGINT, then shut down gracefully."""
    server = MeshServer(
        settings,
        servicers,
        interceptors=interceptors,
        dependency_checks=dependency_checks,
        on_shutdown=on_shutdown,
        **options,
    )
    await server.serve()


async def run_shutdown_hook(hook: ShutdownHook, limit: float = 10.0) -> None:
    """Run one hook (sync or async) for at most ``limit`` seconds; failures are logged.

    The hook runs in a task of its own that is cancelled and left behind at the limit: a hook
    that swallows or ignores its cancellation still cannot hold the shutdown up (a time limit
    enforced by cancelling the hook in place would depend on the hook's cooperation)."""
    name = getattr(hook, "__qualname__", repr(hook))

    async def call() -> None:
        result = hook()
        if inspect.isawaitable(result):
            await result

    task = asyncio.ensure_future(call())
    try:
        done, _ = await asyncio.wait([task], timeout=limit)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        logger.error("shutdown hook %s did not finish within %.1f s; left behind", name, limit)
    elif not task.cancelled() and task.exception() is not None:
        logger.error("shutdown hook %s failed", name, exc_info=task.exception())


def run(main: Coroutine[Any, Any, object]) -> int:
    """Run ``main`` on uvloop when available; return the process exit code (0 on success).

    Use as ``raise SystemExit(run(main()))`` in a service's ``__main__``. Invalid settings and
    ports that cannot be bound end the process with one logged line and exit code 2.
    """
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # Windows, or a slim install: the standard loop works as well
        pass
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(main)
    except (SettingsError, BindError) as exc:
        # The operator's mistake, not a crash: one clear line, no traceback, exit code 2.
        logging.getLogger(__name__).error("cannot start: %s", exc)
        return 2
    return result if isinstance(result, int) else 0
