"""KubernetesServiceDiscovery: a ``ServiceDiscovery`` whose replicas come from EndpointSlices.

The seed's::

    const k8sDiscovery = new KubernetesServiceDiscovery(kubeConfig, {healthCheckInterval: 15000});
    k8sDiscovery.watchKubernetesService('auth-service', 'zoptal');

in Python::

    discovery = KubernetesServiceDiscovery(kube_config, health_check_interval=15000)
    discovery.watch_kubernetes_service("auth-service", "zoptal")

It *is* a ``ServiceDiscovery``: hand it to ``GrpcClientManager(discovery=...)`` or
``ServiceMesh(config, discovery=...)`` and ``get_endpoint``, the balancing strategies, active
health checks and per-endpoint breakers work exactly as with static replicas. Each watch lists
the Service's EndpointSlices, then watches from the list's resourceVersion (bookmarks keep that
version fresh), relists on 410 Gone, and reconnects with capped, jittered backoff on the
injected clock. Every change replaces the service's replica set through ``sync_service`` with
the *ready* endpoints of all its slices; a replica that stays keeps its health history.

When the API server cannot be reached the last known replicas stay registered: health checks
still eject dead ones, and an API outage does not become an outage of every caller.

Use it standalone in a cluster without a service mesh. Under Istio (``MESH_MODE=istio``) the
sidecar already balances over the same endpoints; see docs/adr/0010-kubernetes-discovery.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.discovery.endpoint_slice import instances_from_slice
from meshcore.discovery.health import HEALTH_SERVICE_METADATA_KEY
from meshcore.discovery.instance import ServiceInstance, canonical_service_name
from meshcore.discovery.kube_api import KubeApiClient, KubeApiError, ResourceExpired
from meshcore.discovery.kubeconfig import KubeConfig
from meshcore.discovery.registry import ServiceDiscovery
from meshcore.tasks import cancel_and_wait
from meshcore.timeutil import backoff

__all__ = ["KubernetesServiceDiscovery", "ServiceWatch", "instances_from_slice"]

logger = logging.getLogger(__name__)

_OPTION_NAMES = {
    "healthCheckInterval": "health_check_interval",
    "unhealthyThreshold": "unhealthy_threshold",
    "healthyThreshold": "healthy_threshold",
    "timeout": "timeout",
}


class ServiceWatch:
    """One Service's EndpointSlices, kept current; ``await synced()`` for the first list."""

    def __init__(
        self,
        discovery: KubernetesServiceDiscovery,
        name: str,
        namespace: str,
        *,
        port_name: str,
        health_service: str,
        service: str | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.service = canonical_service_name(service or name)
        """The name its replicas are registered under (the Service's, unless given)."""
        self.port_name = port_name
        self.health_service = health_service
        self.resource_version: str | None = None
        self.lists = 0
        """Completed lists: 1 after start, +1 per relist after 410 Gone."""
        self.reconnects = 0
        """Watches restarted after a dropped connection or an API error."""
        self.last_error: BaseException | None = None
        self._discovery = discovery
        self._slices: dict[str, list[ServiceInstance]] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def synced(self) -> None:
        """Return once the first list has been applied to the registry."""
        await self._synced.wait()

    def start(self) -> None:
        if self.running:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "watch_kubernetes_service needs a running event loop: call it from async "
                "code (for example the service's start-up coroutine)"
            ) from None
        self._task = loop.create_task(
            self._run(), name=f"meshcore-k8s-watch-{self.namespace}/{self.name}"
        )

    async def stop(self) -> None:
        """Stop watching; the replicas last seen stay registered."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        discovery = self._discovery
        api = discovery.api
        failures = 0
        expired_in_a_row = 0
        while True:
            try:
                if self.resource_version is None:
                    items, self.resource_version = await api.list_endpoint_slices(
                        self.namespace, self.name
                    )
                    self._replace(items)
                    self.lists += 1
                    self._synced.set()
                    failures = 0
                started = discovery.clock.monotonic()
                events = 0
                async for event in api.watch_endpoint_slices(
                    self.namespace,
                    self.name,
                    self.resource_version,
                    timeout_seconds=discovery.watch_timeout_seconds,
                ):
                    events += 1
                    failures = expired_in_a_row = 0
                    self._apply(event.type, event.object)
                    self.resource_version = event.resource_version or self.resource_version
                # The server ended the watch (its timeoutSeconds): resume from where it was,
                # unless it ended at once with nothing, which would otherwise spin.
                quick = discovery.clock.monotonic() - started < discovery.backoff_initial_seconds
                if events or not quick:
                    continue
                raise KubeApiError(0, "EmptyWatch", "the watch ended at once with no events")
            except asyncio.CancelledError:
                raise
            except ResourceExpired as error:
                # Relist at once; only a 410 straight after the relist (a loop) waits first.
                logger.info("watch of %s/%s expired (%s); listing again", *self._key(), error)
                self.resource_version = None
                self.last_error = error
                expired_in_a_row += 1
                if expired_in_a_row > 1:
                    delay = discovery.backoff_seconds(expired_in_a_row - 1)
                    await discovery.clock.sleep(delay)
            except Exception as error:
                # Dropped connections, API errors, and malformed objects alike: keep the last
                # known replicas, say why, and try again later rather than die silently.
                failures += 1
                self.reconnects += 1
                self.last_error = error
                delay = discovery.backoff_seconds(failures)
                expected = isinstance(error, httpx.HTTPError | KubeApiError)
                hint = ""
                if isinstance(error, KubeApiError) and error.status in (401, 403):
                    hint = " (needs get/list/watch on endpointslices.discovery.k8s.io)"
                logger.warning(
                    "watch of %s/%s failed: %s%s; retrying in %.1fs",
                    *self._key(),
                    error,
                    hint,
                    delay,
                    exc_info=not expected,
                )
                await discovery.clock.sleep(delay)

    def _key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def _replace(self, items: list[Mapping[str, Any]]) -> None:
        self._slices = {}
        for item in items:
            self._slices[_slice_name(item)] = self._instances(item)
        self._publish()

    def _apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self._slices[_slice_name(obj)] = self._instances(obj)
        elif kind == "DELETED":
            self._slices.pop(_slice_name(obj), None)
        else:  # BOOKMARK: only its resourceVersion matters
            return
        self._publish()

    def _instances(self, endpoint_slice: Mapping[str, Any]) -> list[ServiceInstance]:
        return instances_from_slice(
            self.service,
            endpoint_slice,
            port_name=self.port_name,
            health_service=self.health_service,
        )

    def _publish(self) -> None:
        instances = list(_unique(self._slices))
        if not self.health_service:
            self._keep_health_service(instances)
        self._discovery.sync_service(self.service, instances)

    def _keep_health_service(self, instances: list[ServiceInstance]) -> None:
        # The client manager names the health service on the replicas it finds when a typed
        # client is made (``manager.service(name, health_service=...)``). sync_service copies
        # our metadata over known replicas, so carry that name over, to new pods as well.
        known = self._discovery.get_instances(self.service)
        named = {
            i.id: i.metadata[HEALTH_SERVICE_METADATA_KEY]
            for i in known
            if HEALTH_SERVICE_METADATA_KEY in i.metadata
        }
        fallback = next(iter(named.values()), None)
        for instance in instances:
            health_service = named.get(instance.id, fallback)
            if health_service is not None:
                instance.metadata = {
                    **instance.metadata,
                    HEALTH_SERVICE_METADATA_KEY: health_service,
                }


def _slice_name(endpoint_slice: Mapping[str, Any]) -> str:
    return str((endpoint_slice.get("metadata") or {}).get("name", ""))


def _unique(slices: Mapping[str, list[ServiceInstance]]) -> Iterator[ServiceInstance]:
    # While the controller moves an endpoint between slices it may be listed in both.
    seen: set[str] = set()
    for instances in slices.values():
        for instance in instances:
            if instance.id not in seen:
                seen.add(instance.id)
                yield instance


class KubernetesServiceDiscovery(ServiceDiscovery):
    """``ServiceDiscovery`` fed by EndpointSlice watches (``watch_kubernetes_service``)."""

    def __init__(
        self,
        kube_config: KubeConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        health_check_interval: float = 30_000,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 2,
        timeout: float = 5_000,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.AsyncBaseTransport | None = None,
        port_name: str = "grpc",
        watch_timeout_seconds: int = 290,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        token_refresh_seconds: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        """``kube_config``: a ``KubeConfig``, a parsed kubeconfig, a kubeconfig path, or None
        (in-cluster in a pod, else ``$KUBECONFIG``). ``options`` takes the seed's camelCase
        ``{healthCheckInterval: 15000}`` (milliseconds, as the keyword arguments)."""
        settings: dict[str, Any] = {
            "health_check_interval": health_check_interval,
            "unhealthy_threshold": unhealthy_threshold,
            "healthy_threshold": healthy_threshold,
            "timeout": timeout,
        }
        for key, value in (options or {}).items():
            name = _OPTION_NAMES.get(key, key)
            if name not in settings:
                raise ValueError(f"unknown KubernetesServiceDiscovery option {key!r}")
            settings[name] = value
        super().__init__(**settings, rng=rng)
        if backoff_initial_seconds <= 0 or backoff_max_seconds < backoff_initial_seconds:
            raise ValueError("backoff needs 0 < initial <= max")
        self.config = KubeConfig.load(kube_config)
        self.clock = clock
        self.port_name = port_name
        self.watch_timeout_seconds = watch_timeout_seconds
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.api = KubeApiClient(
            self.config,
            clock=clock,
            transport=transport,
            token_refresh_seconds=token_refresh_seconds,
        )
        self._backoff_rng = rng or random.Random()
        self._watches: dict[str, ServiceWatch] = {}

    def watch_kubernetes_service(
        self,
        name: str,
        namespace: str | None = None,
        *,
        port_name: str | None = None,
        health_service: str = "",
    ) -> ServiceWatch:
        """Start keeping ``name``'s replicas current from its EndpointSlices (needs a running
        event loop). ``namespace`` defaults to the configuration's (the pod's own in-cluster).
        Watching the same Service again returns the running watch."""
        watch = self.add_watch(name, namespace, port_name=port_name, health_service=health_service)
        watch.start()
        return watch

    def add_watch(
        self,
        name: str,
        namespace: str | None = None,
        *,
        port_name: str | None = None,
        health_service: str = "",
        service: str | None = None,
    ) -> ServiceWatch:
        """``watch_kubernetes_service`` without starting it: ``start()`` does, from the loop
        (a client manager built before the loop runs starts it on first use). ``service``
        registers the replicas under another name than the Service's (a peer's own name)."""
        namespace = namespace or self.config.namespace
        service = canonical_service_name(service or name)
        existing = self._watches.get(service)
        if existing is not None:
            if (existing.name, existing.namespace) != (name, namespace):
                raise ValueError(
                    f"service {service!r} is already watched as "
                    f"{existing.namespace}/{existing.name}"
                )
            return existing
        watch = ServiceWatch(
            self,
            name,
            namespace,
            port_name=port_name or self.port_name,
            health_service=health_service,
            service=service,
        )
        self._watches[service] = watch
        return watch

    def start(self) -> None:
        """Start every watch added and not running (needs the running event loop)."""
        for watch in self._watches.values():
            watch.start()

    @property
    def watches(self) -> list[ServiceWatch]:
        return list(self._watches.values())

    def backoff_seconds(self, failures: int) -> float:
        """Exponential in ``failures``, capped, with jitter in [half, full] so that many
        replicas of a caller do not reconnect to the API server in lockstep."""
        initial, cap = self.backoff_initial_seconds, self.backoff_max_seconds
        return backoff(failures, initial, cap, self._backoff_rng, spread=0.5)

    async def close(self) -> None:
        """Stop every watch and close the API connection (replicas stay registered)."""
        await asyncio.gather(*(watch.stop() for watch in self._watches.values()))
        await self.api.aclose()

    async def __aenter__(self) -> KubernetesServiceDiscovery:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
