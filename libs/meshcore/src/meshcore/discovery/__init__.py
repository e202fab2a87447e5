"""Service discovery: the registry, static sources and active health checking.

``ServiceDiscovery`` is source-agnostic: ``static`` registers replicas from configuration, and a
watcher (for Kubernetes, ``discovery/kubernetes.py``) keeps a service's replica set current with
``ServiceDiscovery.sync_service``. ``HealthChecker`` ejects and readmits replicas; ``channels``
keeps one gRPC channel per discovered endpoint.
"""

from meshcore.discovery.channels import DEFAULT_CHANNEL_OPTIONS, ChannelPool, Connection
from meshcore.discovery.health import (
    HEALTH_SERVICE_METADATA_KEY,
    GrpcHealthProbe,
    HealthChecker,
    HealthProbe,
)
from meshcore.discovery.instance import EndpointLoad, ServiceInstance, canonical_service_name
from meshcore.discovery.registry import ChangeListener, NoHealthyEndpoint, ServiceDiscovery
from meshcore.discovery.static import (
    ServiceConfig,
    ServiceSpec,
    instances_from_addresses,
    parse_service_configs,
    register_from_env,
    split_address,
)

__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "HEALTH_SERVICE_METADATA_KEY",
    "ChangeListener",
    "ChannelPool",
    "Connection",
    "EndpointLoad",
    "GrpcHealthProbe",
    "HealthChecker",
    "HealthProbe",
    "KubeConfig",
    "KubernetesServiceDiscovery",
    "NoHealthyEndpoint",
    "ServiceConfig",
    "ServiceDiscovery",
    "ServiceInstance",
    "ServiceSpec",
    "canonical_service_name",
    "instances_from_addresses",
    "parse_service_configs",
    "register_from_env",
    "split_address",
]


def __getattr__(name: str) -> object:
    # Kubernetes discovery pulls in httpx and TLS setup; load it only for those who ask for it.
    if name in ("KubernetesServiceDiscovery", "KubeConfig"):
        from meshcore.discovery import kubeconfig, kubernetes

        return {
            "KubernetesServiceDiscovery": kubernetes.KubernetesServiceDiscovery,
            "KubeConfig": kubeconfig.KubeConfig,
        }[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
