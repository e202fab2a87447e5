"""SERVICE_DISCOVERY in the settings, and which Service and namespace each <SVC>_ADDR names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pytest
from meshcore.discovery.kubeconfig import KubeConfig
from meshcore.discovery.peers import kubernetes_peer_discovery, kubernetes_service
from meshcore.settings import ServiceSettings, SettingsError

POD = KubeConfig(server="https://kube.test:6443", token="sa-token", namespace="zoptal")


@dataclass(frozen=True, kw_only=True)
class CallerSettings(ServiceSettings):
    service_name: ClassVar[str] = "caller"
    peer_defaults: ClassVar[Mapping[str, str]] = {
        "auth": "auth:4000",
        "billing": "billing:4003",
    }


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("auth:4000", ("auth", None)),
        ("auth.zoptal:4000", ("auth", "zoptal")),
        ("auth.zoptal.svc:4000", ("auth", "zoptal")),
        ("auth.zoptal.svc.cluster.local:4000", ("auth", "zoptal")),
        ("auth.zoptal.svc.cluster.local.:4000", ("auth", "zoptal")),
    ],
)
def test_an_address_names_a_service(address: str, expected: tuple[str, str | None]) -> None:
    assert kubernetes_service(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.96.0.10:4000", "IP address"),
        ("[fd00::1]:4000", "IP address"),
        ("smtp.example.com:4000", "not <service>"),
        ("auth", "host:port"),
    ],
)
def test_an_address_that_names_no_service_is_refused(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kubernetes_service(address)


def test_every_peer_is_watched_under_its_own_name() -> None:
    """The Service the address names, in its namespace or the pod's, registered as the peer."""
    settings = CallerSettings.from_env(
        {"SERVICE_DISCOVERY": "kubernetes", "AUTH_ADDR": "identity.platform.svc:4000"}
    )
    discovery = kubernetes_peer_discovery(settings, kube_config=POD)
    found = {(w.service, w.name, w.namespace, w.port_name) for w in discovery.watches}
    assert found == {
        ("auth", "identity", "platform", "grpc"),
        ("billing", "billing", "zoptal", "grpc"),
    }
    assert not any(w.running for w in discovery.watches), "started by the manager, in the loop"


def test_the_namespace_setting_overrides_the_address() -> None:
    settings = CallerSettings.from_env(
        {
            "SERVICE_DISCOVERY": "kubernetes",
            "SERVICE_DISCOVERY_NAMESPACE": "shop",
            "AUTH_ADDR": "auth.zoptal:4000",
        }
    )
    discovery = kubernetes_peer_discovery(settings, kube_config=POD)
    assert {w.namespace for w in discovery.watches} == {"shop"}


@pytest.mark.parametrize(
    ("auth_addr", "message"),
    [
        ("10.0.0.5:4000,10.0.0.6:4000", "AUTH_ADDR: .*one Service address, got 2"),
        ("10.0.0.5:4000", "AUTH_ADDR: .*IP address"),
    ],
)
def test_an_address_kubernetes_can_not_watch_names_its_variable(
    auth_addr: str, message: str
) -> None:
    settings = CallerSettings.from_env({"SERVICE_DISCOVERY": "kubernetes", "AUTH_ADDR": auth_addr})
    with pytest.raises(ValueError, match=message):
        kubernetes_peer_discovery(settings, kube_config=POD)


def test_kubernetes_discovery_is_refused_under_istio() -> None:
    """Two balancers over the same pods would hide replicas from Envoy's outlier detection."""
    with pytest.raises(SettingsError, match="SERVICE_DISCOVERY: kubernetes is for MESH_MODE"):
        CallerSettings.from_env({"SERVICE_DISCOVERY": "kubernetes", "MESH_MODE": "istio"})


def test_an_unknown_discovery_source_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="SERVICE_DISCOVERY"):
        CallerSettings.from_env({"SERVICE_DISCOVERY": "consul"})
    assert CallerSettings.from_env({}).service_discovery == "static"
