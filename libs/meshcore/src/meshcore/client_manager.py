"""GrpcClientManager: the seed's ``createGrpcClientManager({...})``.

It owns, for every configured service: the replicas (in a ``ServiceDiscovery``), one channel
per endpoint (``ChannelPool``), one ``CircuitBreaker`` per endpoint (so one bad replica is
ejected while the others serve), the health checker, the retry policy and budget, and the
default deadline. Typed clients (``zoptal.clients``) take a manager and ask it for a
``ServiceCaller`` per service (``meshcore.resilience.calls``: the per-call path).

Mesh modes (``MESH_MODE``):

* ``standalone``: meshcore balances, health-checks, breaks and retries.
* ``istio``: the Envoy sidecar balances, retries and ejects outliers, so meshcore sends every
  call to the service address it was given, runs no health-check loop and never retries (one
  retry layer per call path: retries at both layers multiply). Deadlines, metadata (client
  interceptors) and the breaker stay.

Replicas (``SERVICE_DISCOVERY``): the ``<SVC>_ADDR`` addresses (``static``), or on Kubernetes
without a mesh the ready pods of the Services they name (``kubernetes``, watched from their
EndpointSlices: ``meshcore.discovery.peers``), so calls balance per pod and per call.

Transport security: ``credentials`` (grpc's, or ``ReloadingChannelCredentials`` for certificate
files, which the manager checks every ``tls_reload_seconds`` and follows when re-issued).
``from_settings`` uses mutual TLS with the service's own certificate whenever ``TLS_*_FILE`` are
set in standalone mode; under Istio the sidecar originates mTLS, so calls stay plaintext.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc

from meshcore.balancing import make_strategy
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.discovery.channels import DEFAULT_CHANNEL_OPTIONS, ChannelPool
from meshcore.discovery.health import (
    HEALTH_SERVICE_METADATA_KEY,
    GrpcHealthProbe,
    HealthChecker,
)
from meshcore.discovery.instance import ServiceInstance, canonical_service_name
from meshcore.discovery.kubeconfig import KubeConfig
from meshcore.discovery.registry import ServiceDiscovery
from meshcore.discovery.static import ServiceConfig, ServiceSpec, parse_service_configs
from meshcore.observability.runtime_metrics import breaker_state_listener, observe_breaker
from meshcore.resilience.breaker import CircuitBreaker, CircuitState
from meshcore.resilience.budget import RetryBudget
from meshcore.resilience.calls import (
    Metadata,
    ServiceCaller,
    StreamUnaryMethod,
    UnaryMethod,
)
from meshcore.resilience.retry import RetryPolicy
from meshcore.settings import ServiceSettings
from meshcore.tasks import cancel_and_wait
from meshcore.tls import ReloadingChannelCredentials, TlsFiles

__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "BreakerSettings",
    "GrpcClientManager",
    "MeshMode",
    "Metadata",
    "ServiceCaller",
    "ServiceConfig",
    "ServiceSpec",
    "StreamUnaryMethod",
    "UnaryMethod",
    "create_grpc_client_manager",
    "default_client_interceptors",
    "parse_service_configs",
]

MeshMode = Literal["standalone", "istio"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerSettings:
    """Per-endpoint breaker settings (ms). Recovery defaults to 30 s, Envoy's base ejection
    time, rather than the seed's 60 s: health checks readmit a replica anyway."""

    failure_threshold: int = 5
    recovery_timeout: float = 30_000
    monitoring_period: float = 10_000
    half_open_max_calls: int = 1


def default_client_interceptors(
    *,
    service_token: str | Callable[[], str | None] | None = None,
    metrics: bool = True,
    tracing: bool = False,
) -> list[grpc.aio.ClientInterceptor]:
    """meshcore's client chain (metrics, tracing, request id / traceparent / service token /
    deadline propagation), or nothing when this build has no ``meshcore.interceptors``."""
    try:
        from meshcore.interceptors.client_stack import build_client_interceptors
    except ImportError:  # pragma: no cover - meshcore ships them; kept for partial installs
        return []
    tracer_provider = None
    if tracing:
        from opentelemetry import trace

        tracer_provider = trace.get_tracer_provider()
    return list(
        build_client_interceptors(
            service_token=service_token,
            tracer_provider=tracer_provider,
            metrics_registry=None if metrics else False,
        )
    )


class GrpcClientManager:
    """Channels, breakers, discovery and policy for the services a process calls."""

    def __init__(
        self,
        services: Mapping[str, ServiceSpec] | None = None,
        *,
        mode: MeshMode = "standalone",
        discovery: ServiceDiscovery | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
        credentials: grpc.ChannelCredentials | ReloadingChannelCredentials | None = None,
        tls_reload_seconds: float = 30.0,
        channel_options: Sequence[tuple[str, Any]] = (),
        strategy: str = "p2c-ewma",
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        breaker: BreakerSettings | None = None,
        timeout: float = 30_000,
        health_checks: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        close_discovery: bool = False,
    ) -> None:
        """``close_discovery``: the discovery was made for this manager (``from_settings``), so
        ``close`` stops its watches too; one that was handed in is its owner's to close."""
        if mode not in ("standalone", "istio"):
            raise ValueError(f"unknown mesh mode {mode!r} (standalone or istio)")
        make_strategy(strategy)  # an unknown name fails here, not on the first call
        self.mode: MeshMode = mode
        self.clock = clock
        self.discovery = discovery if discovery is not None else ServiceDiscovery()
        self._close_discovery = close_discovery
        if interceptors is None:
            interceptors = default_client_interceptors()
        self.pool = ChannelPool(
            options=channel_options, interceptors=interceptors, credentials=credentials
        )
        self.strategy = strategy
        self.retry = None if mode == "istio" else (retry if retry is not None else RetryPolicy())
        self.retry_budget = retry_budget
        self.breaker_settings = breaker or BreakerSettings()
        self.timeout_ms = timeout
        self.configs: dict[str, ServiceConfig] = parse_service_configs(services or {})
        self.breakers: dict[ServiceInstance, CircuitBreaker] = {}
        """One breaker per endpoint, made on first use (``breaker_for``)."""
        self._callers: dict[str, ServiceCaller] = {}
        self._health_services: dict[str, str] = {}
        self._budgets: dict[str, RetryBudget] = {}
        self._health: HealthChecker | None = None
        if health_checks and mode == "standalone":
            self._grpc_probe = GrpcHealthProbe(self.channel_for)
            self._health = HealthChecker(self.discovery, self._probe_and_uneject, clock=clock)
        self.tls_reload_seconds = tls_reload_seconds
        self._tls_watch: asyncio.Task[None] | None = None
        self.started = False
        self._closing: list[asyncio.Task[None]] = []
        self.discovery.add_listener(self._on_discovery_change)
        for name, config in self.configs.items():
            self.discovery.sync_service(name, config.instances())

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        *,
        service_token: str | Callable[[], str | None] | None = None,
        kube_config: KubeConfig | Mapping[str, Any] | str | None = None,
        **options: Any,
    ) -> GrpcClientManager:
        """A manager for a service's peers (``<SVC>_ADDR``) in its ``MESH_MODE``, with
        meshcore's client interceptors carrying ``service_token`` as ``x-service-token``, and
        mutual TLS with the service's certificate when ``TLS_*_FILE`` are set (standalone).

        With ``SERVICE_DISCOVERY=kubernetes`` the replicas are the pods of the Services the
        ``<SVC>_ADDR`` name, watched through ``kube_config`` (default: the pod's service
        account), and the ``<SVC>_ADDR`` addresses serve until each first list arrives
        (``meshcore.discovery.peers``)."""
        options.setdefault("mode", settings.mesh_mode)
        if settings.service_discovery == "kubernetes" and "discovery" not in options:
            # Imported here: the Kubernetes client (httpx, TLS set-up) only where it is used.
            from meshcore.discovery.peers import kubernetes_peer_discovery

            options["discovery"] = kubernetes_peer_discovery(
                settings, kube_config=kube_config, clock=options.get("clock", SYSTEM_CLOCK)
            )
            options["close_discovery"] = True
        files = TlsFiles.from_settings(settings)
        if files is not None and options["mode"] == "standalone":
            options.setdefault("credentials", ReloadingChannelCredentials(files))
        if "interceptors" not in options:
            options["interceptors"] = default_client_interceptors(service_token=service_token)
        return cls(dict(settings.peers), **options)

    # -- per-service callers --------------------------------------------------------------

    def service(self, name: str, *, health_service: str = "") -> ServiceCaller:
        """The caller for service ``name`` (any spelling); typed clients call this once.

        ``health_service`` names the ``grpc.health.v1`` service to probe on its replicas (the
        typed clients pass their full service name); replicas registered later get it too.
        """
        service = canonical_service_name(name)
        if health_service and service not in self._health_services:
            self._health_services[service] = health_service
            for instance in self.discovery.get_instances(service):
                self._apply_health_service(instance)
        caller = self._callers.get(service)
        if caller is not None:
            return caller
        if not self.discovery.get_instances(service):
            known = ", ".join(sorted(self.configs)) or "none"
            raise KeyError(
                f"no endpoints configured for service {service!r} "
                f"(set {service.upper()}_ADDR or configure it; configured: {known})"
            )
        config = self.configs.get(service)
        retry = self.retry
        if retry is not None and config is not None and config.max_retries is not None:
            retry = RetryPolicy(
                max_retries=config.max_retries,
                base_delay=retry.base_delay,
                max_delay=retry.max_delay,
                retry_on=retry.retry_on,
            )
        timeout_ms = self.timeout_ms
        if config is not None and config.timeout_ms is not None:
            timeout_ms = config.timeout_ms
        strategy = self.strategy
        if config is not None and config.strategy is not None:
            strategy = config.strategy
        caller = self._callers[service] = ServiceCaller(
            self,
            service,
            strategy=strategy,
            retry=retry,
            budget=self._budget_for(service) if retry is not None else None,
            timeout_seconds=timeout_ms / 1000.0,
            clock=self.clock,
        )
        return caller

    def _budget_for(self, service: str) -> RetryBudget:
        # One budget per service: an outage of one callee must not spend another's retries.
        if self.retry_budget is not None:
            return self.retry_budget
        budget = self._budgets.get(service)
        if budget is None:
            budget = self._budgets[service] = RetryBudget(clock=self.clock)
        return budget

    # -- endpoints ------------------------------------------------------------------------

    def channel_for(self, instance: ServiceInstance) -> grpc.aio.Channel:
        return self.pool.channel(instance.address)

    def breaker_for(self, instance: ServiceInstance) -> CircuitBreaker:
        breaker = self.breakers.get(instance)
        if breaker is None:
            settings = self.breaker_settings
            breaker = self.breakers[instance] = CircuitBreaker(
                settings.failure_threshold,
                settings.recovery_timeout,
                settings.monitoring_period,
                half_open_max_calls=settings.half_open_max_calls,
                name=f"{instance.service}@{instance.address}",
                clock=self.clock,
                on_state_change=breaker_state_listener(instance.service, instance.address),
            )
            observe_breaker(breaker, instance.service, instance.address)
        return breaker

    async def _probe_and_uneject(self, instance: ServiceInstance, timeout_seconds: float) -> bool:
        """The active health check, which also closes the replica's open breaker when it passes.

        As Envoy's ``successful_active_health_check_uneject_host`` (on by default): a replica
        that answers SERVING is back, whatever its last calls said. Without it, a replica that
        restarted faster than ``unhealthy_threshold`` checks never flips to unhealthy and back,
        so its breaker would keep refusing every call for the rest of the recovery timeout.
        """
        passed = await self._grpc_probe(instance, timeout_seconds)
        if passed:
            breaker = self.breakers.get(instance)
            if breaker is not None and breaker.state is CircuitState.OPEN:
                breaker.reset()
        return passed

    def _apply_health_service(self, instance: ServiceInstance) -> None:
        """Tag a replica with its service's health-check name, unless its source set one."""
        name = self._health_services.get(instance.service)
        if name and HEALTH_SERVICE_METADATA_KEY not in instance.metadata:
            instance.metadata = {**instance.metadata, HEALTH_SERVICE_METADATA_KEY: name}

    def _on_discovery_change(self, service: str, instance: ServiceInstance, event: str) -> None:
        if event == "registered":
            self._apply_health_service(instance)
            return
        if event == "healthy":
            # As Envoy un-ejects an outlier that passes an active health check: the replica
            # was readmitted after consecutive successful checks, so its breaker starts afresh
            # instead of keeping it out for the rest of a recovery timeout.
            breaker = self.breakers.get(instance)
            if breaker is not None:
                breaker.reset()
            return
        if event != "deregistered":
            return
        self.breakers.pop(instance, None)
        still_used = any(i.address == instance.address for i in self.discovery.all_instances())
        if still_used or instance.address not in self.pool.addresses():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop, so no call can be using it: close() will close it
            return
        task = loop.create_task(self.pool.discard(instance.address))
        self._closing.append(task)
        task.add_done_callback(self._closing.remove)

    # -- lifecycle ------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start health checks on first use (needs the running loop, so not in __init__)."""
        if self.started:
            return
        self.started = True
        self.discovery.start()
        if self._health is not None:
            self._health.start()
        if self.pool.reloading is not None:
            self._tls_watch = asyncio.get_running_loop().create_task(
                self._watch_certificates(), name="meshcore-tls-reload"
            )

    async def reload_certificates(self) -> bool:
        """Look at the certificate files now; True if re-issued ones are in use from now on."""
        return await self.pool.reload_credentials()

    async def _watch_certificates(self) -> None:
        # A few stat calls per interval. Re-issued certificates overlap the old ones by a third
        # of their life (meshcore.pki), so seconds of delay do not matter; failed calls would.
        while True:
            await self.clock.sleep(self.tls_reload_seconds)
            try:
                await self.reload_certificates()
            except Exception:  # keep watching: the next look may succeed
                logger.exception("following re-issued certificate files failed")

    async def start(self) -> None:
        self.ensure_started()

    async def close(self, grace: float | None = None) -> None:
        """Stop health checks and close every channel (``grace`` seconds for in-flight calls)."""
        if self._health is not None:
            await self._health.stop()
        await cancel_and_wait(self._tls_watch)
        if self._close_discovery:
            await self.discovery.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.pool.close(grace)

    async def __aenter__(self) -> GrpcClientManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- reporting ------------------------------------------------------------------------

    def endpoint_states(self) -> dict[str, list[dict[str, Any]]]:
        """Every service's replicas as discovery and the breakers see them now."""
        report: dict[str, list[dict[str, Any]]] = {}
        for service in self.discovery.services():
            report[service] = [
                {
                    "id": instance.id,
                    "address": instance.address,
                    "healthy": instance.healthy,
                    "circuit": self.breaker_for(instance).state.value,
                    "in_flight": instance.load.in_flight,
                    "latency_ewma_ms": round(instance.load.ewma_seconds * 1000.0, 3),
                }
                for instance in self.discovery.get_instances(service)
            ]
        return report


def create_grpc_client_manager(
    services: Mapping[str, ServiceSpec], **options: Any
) -> GrpcClientManager:
    """The seed's ``createGrpcClientManager({authService: {host, port}, ...})``.

    ``options`` are ``GrpcClientManager``'s keyword arguments (mode, interceptors, ...).
    """
    return GrpcClientManager(services, **options)
