"""Which discovery a service's peers use: ``SERVICE_DISCOVERY`` (``ServiceSettings``).

``static`` (the default): the replicas are the ``<NAME>_ADDR`` addresses. Behind a Kubernetes
ClusterIP Service that is one address, and kube-proxy balances per *connection*: gRPC keeps one
long-lived HTTP/2 connection, so every call of a caller lands on one pod.

``kubernetes``: each ``<NAME>_ADDR`` names the Service whose EndpointSlices are watched
(``auth:4000`` → Service ``auth`` in the pod's namespace; ``auth.zoptal:4000`` or
``auth.zoptal.svc.cluster.local:4000`` → Service ``auth`` in ``zoptal``;
``SERVICE_DISCOVERY_NAMESPACE`` overrides the namespace). The replicas are then the ready pods on
their port named ``grpc``, so meshcore balances, health-checks and breaks per pod and per call.
Until a Service's first list arrives (the API server slow, or its RBAC or NetworkPolicy
missing: the watch logs why and retries), calls go to the ``<NAME>_ADDR`` address, as static
discovery would; an API outage later keeps the pods last seen (ADR 0010).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.discovery.kubeconfig import KubeConfig
from meshcore.discovery.kubernetes import KubernetesServiceDiscovery
from meshcore.discovery.static import split_address
from meshcore.settings import ServiceSettings

__all__ = ["kubernetes_peer_discovery", "kubernetes_service"]


def kubernetes_service(address: str) -> tuple[str, str | None]:
    """The (Service, namespace or None) a ``host:port`` names in the cluster's DNS.

    ``ValueError`` for anything that is not a Service name: an IP address, or a dotted name
    other than ``<svc>.<ns>`` or ``<svc>.<ns>.svc[.<cluster domain>]``.
    """
    host, _ = split_address(address)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise ValueError(f"{address!r} is an IP address, not a Kubernetes Service name")
    labels = host.rstrip(".").split(".")
    if len(labels) == 1:
        return labels[0], None
    if len(labels) == 2 or labels[2] == "svc":
        return labels[0], labels[1]
    raise ValueError(f"{address!r} is not <service>[.<namespace>[.svc...]]:<port>")


def kubernetes_peer_discovery(
    settings: ServiceSettings,
    *,
    kube_config: KubeConfig | Mapping[str, object] | str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> KubernetesServiceDiscovery:
    """A discovery that watches the Service of every peer in ``settings.peers`` (not started:
    the client manager starts it on first use, inside the event loop).

    ``kube_config`` defaults to the pod's own service account (``KubeConfig.in_cluster``),
    else ``$KUBECONFIG``. ``ValueError`` names the ``<NAME>_ADDR`` that names no Service.
    """
    discovery = KubernetesServiceDiscovery(kube_config, clock=clock)
    for peer, addresses in settings.peers.items():
        variable = f"{peer.upper()}_ADDR"
        if len(addresses) != 1:
            raise ValueError(
                f"{variable}: SERVICE_DISCOVERY=kubernetes needs one Service address, "
                f"got {len(addresses)}"
            )
        try:
            service, namespace = kubernetes_service(addresses[0])
        except ValueError as error:
            raise ValueError(f"{variable}: {error}") from None
        namespace = settings.service_discovery_namespace or namespace
        discovery.add_watch(service, namespace, service=peer)
    return discovery
