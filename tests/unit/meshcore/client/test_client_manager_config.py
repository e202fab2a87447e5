"""Client manager and mesh configuration: accepted shapes, modes, and endpoint selection."""

from __future__ import annotations

import pytest
from meshcore.client_manager import (
    BreakerSettings,
    GrpcClientManager,
    create_grpc_client_manager,
    parse_service_configs,
)
from meshcore.mesh import create_service_mesh
from meshcore.resilience import CircuitOpenError
from meshcore.settings import ServiceSettings
from meshcore.testing import FakeClock


def test_seed_shapes_and_address_lists_are_accepted() -> None:
    """Seed dicts, endpoint lists and <SVC>_ADDR strings all configure services."""
    configs = parse_service_configs(
        {
            "authService": {"host": "localhost", "port": 4000, "maxRetries": 2, "timeout": 5000},
            "project-service": "10.0.0.1:4001,10.0.0.2:4001",
            "billing": ("127.0.0.1:4003",),
            "analytics": {
                "endpoints": [{"host": "a", "port": 4005, "weight": 3}, "b:4005"],
                "metadata": {"version": "1.0.0"},
            },
        }
    )
    assert set(configs) == {"auth", "project", "billing", "analytics"}
    assert configs["auth"].max_retries == 2
    assert configs["auth"].timeout_ms == 5000
    assert configs["project"].endpoints == (("10.0.0.1", 4001, 1), ("10.0.0.2", 4001, 1))
    assert configs["analytics"].endpoints == (("a", 4005, 3), ("b", 4005, 1))
    replicas = configs["analytics"].instances()
    assert [(i.id, i.weight, i.metadata["version"]) for i in replicas] == [
        ("analytics-1", 3, "1.0.0"),
        ("analytics-2", 1, "1.0.0"),
    ]


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ({"auth": {"host": "h", "port": 1, "retries": 3}}, "unknown options"),
        ({"auth": {"host": "h", "port": 1, "strategy": "fastest"}}, "unknown strategy"),
        ({"auth": "h:1", "authService": "h:2"}, "configured twice"),
        ({"auth": "nonsense"}, "host:port"),
    ],
)
def test_bad_configuration_is_refused_naming_the_problem(
    services: dict[str, object], message: str
) -> None:
    """Typos and duplicates fail at construction, not on the first call."""
    with pytest.raises(ValueError, match=message):
        parse_service_configs(services)  # type: ignore[arg-type]


def test_unknown_service_names_the_variable_to_set() -> None:
    """Asking for an unconfigured service says which <SVC>_ADDR is missing."""
    manager = create_grpc_client_manager({"auth": "127.0.0.1:4000"}, interceptors=())
    with pytest.raises(KeyError, match="BILLING_ADDR"):
        manager.service("billing")


def test_istio_mode_switches_retries_and_health_loop_off() -> None:
    """Under Istio the sidecar retries and ejects; meshcore keeps deadlines and breakers."""
    manager = create_grpc_client_manager(
        {"auth": "auth.zoptal.svc.cluster.local:4000"}, mode="istio", interceptors=()
    )
    caller = manager.service("auth")
    assert manager.retry is None
    assert caller.retry is None
    assert caller.budget is None
    assert manager._health is None
    instance, breaker = caller.choose()
    assert instance.address == "auth.zoptal.svc.cluster.local:4000"
    assert breaker.allows_request()


def test_per_service_overrides_apply() -> None:
    """maxRetries and timeout from a service's config override the manager defaults."""
    manager = create_grpc_client_manager(
        {"auth": {"host": "h", "port": 1, "maxRetries": 0, "timeout": 250}}, interceptors=()
    )
    caller = manager.service("authService")
    assert caller.retry is None
    assert caller.timeout_seconds == 0.25


def test_choose_skips_replicas_whose_breaker_is_open() -> None:
    """An open breaker takes its replica out of rotation; with all open, CircuitOpenError."""
    clock = FakeClock()
    manager = GrpcClientManager(
        {"auth": "127.0.0.1:4000,127.0.0.1:4010"},
        interceptors=(),
        strategy="round-robin",
        breaker=BreakerSettings(failure_threshold=1),
        clock=clock,
        health_checks=False,
    )
    caller = manager.service("auth")
    first, second = manager.discovery.get_instances("auth")
    manager.breaker_for(first).on_failure(0)
    assert {caller.choose()[0].id for _ in range(10)} == {second.id}
    manager.breaker_for(second).on_failure(0)
    _, breaker = caller.choose()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()


def test_from_settings_uses_peers_and_mesh_mode() -> None:
    """A service's settings (<SVC>_ADDR peers, MESH_MODE) configure its manager."""
    settings = ServiceSettings(peers={"billing": ("10.0.0.9:4003",)}, mesh_mode="istio")
    manager = GrpcClientManager.from_settings(settings, interceptors=())
    assert manager.mode == "istio"
    assert [i.address for i in manager.discovery.get_instances("billing")] == ["10.0.0.9:4003"]


def test_mesh_reads_mode_from_environment_and_refuses_bad_values() -> None:
    """MESH_MODE selects the mode; a typo is an error, never a silent standalone."""
    config = {"services": {"auth-service": {"host": "auth", "port": 4000}}}
    mesh = create_service_mesh(config, environ={"MESH_MODE": "istio"}, interceptors=())
    assert mesh.mode == "istio"
    assert mesh.manager.retry is None
    with pytest.raises(ValueError, match="MESH_MODE"):
        create_service_mesh(config, environ={"MESH_MODE": "isito"}, interceptors=())


def test_mesh_mtls_needs_certificate_files() -> None:
    """security.mtls without cert and key files is refused in standalone mode."""
    config = {
        "services": {"auth-service": {"host": "auth", "port": 4000}},
        "security": {"tls": True, "mtls": True},
    }
    with pytest.raises(ValueError, match="cert_file and key_file"):
        create_service_mesh(config, environ={}, interceptors=())
    # Under Istio the sidecar originates mTLS, so the same config is fine.
    assert create_service_mesh(config, environ={"MESH_MODE": "istio"}, interceptors=()).mode


def test_mesh_refuses_misspelt_options() -> None:
    """A typo in a section (helthCheckInterval) fails instead of silently using a default."""
    config = {
        "services": {"auth-service": {"host": "auth", "port": 4000}},
        "discovery": {"enabled": True, "helthCheckInterval": 1000},
    }
    with pytest.raises(ValueError, match="helthCheckInterval"):
        create_service_mesh(config, environ={}, interceptors=())
