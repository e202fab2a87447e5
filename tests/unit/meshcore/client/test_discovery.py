"""ServiceDiscovery and health checking: registration, thresholds, ejection and readmission."""

from __future__ import annotations

import pytest
from meshcore.discovery import (
    HealthChecker,
    NoHealthyEndpoint,
    ServiceDiscovery,
    ServiceInstance,
    canonical_service_name,
    instances_from_addresses,
    register_from_env,
)
from meshcore.errors import Unavailable
from meshcore.testing import FakeClock

from tests.support import settle


class ScriptedProbe:
    """A health probe whose answer per address the test sets."""

    def __init__(self) -> None:
        self.up: dict[str, bool] = {}
        self.calls = 0

    async def __call__(self, instance: ServiceInstance, timeout_seconds: float) -> bool:
        self.calls += 1
        return self.up.get(instance.address, True)


def two_replicas(**kwargs: int) -> ServiceDiscovery:
    discovery = ServiceDiscovery(**kwargs)  # type: ignore[arg-type]
    discovery.register_service(
        {"id": "a", "name": "auth-service", "host": "127.0.0.1", "port": 4000}
    )
    discovery.register_service(
        {"id": "b", "name": "auth-service", "host": "127.0.0.1", "port": 4010}
    )
    return discovery


def test_service_names_meet_in_one_spelling() -> None:
    """authService, auth_service, auth-service, AUTH and auth name the same service."""
    spellings = ["authService", "auth_service", "auth-service", "AUTH", "auth", "AuthService"]
    assert {canonical_service_name(s) for s in spellings} == {"auth"}


def test_seed_registration_shape_and_deregistration() -> None:
    """register_service takes the seed's dict; deregister_service removes by id."""
    discovery = two_replicas()
    assert {i.id for i in discovery.get_instances("auth")} == {"a", "b"}
    assert discovery.deregister_service("a")
    assert not discovery.deregister_service("a")
    assert [i.id for i in discovery.healthy_instances("auth-service")] == ["b"]


def test_unknown_registration_fields_are_refused() -> None:
    """A misspelt field (wieght) is an error, not a silently ignored setting."""
    with pytest.raises(ValueError, match="wieght"):
        ServiceDiscovery().register_service(
            {"id": "a", "name": "auth", "host": "h", "port": 1, "wieght": 3}
        )


def test_no_healthy_endpoint_is_unavailable_naming_the_service() -> None:
    """With every replica unhealthy, get_endpoint raises UNAVAILABLE naming the service."""
    discovery = two_replicas(unhealthy_threshold=1)
    for instance in discovery.get_instances("auth"):
        discovery.record_check(instance, False)
    with pytest.raises(NoHealthyEndpoint, match=r"'auth' \(0 of 2 healthy\)") as caught:
        discovery.get_endpoint("auth-service")
    assert isinstance(caught.value, Unavailable)
    with pytest.raises(NoHealthyEndpoint, match="'billing' \\(none registered\\)"):
        discovery.get_endpoint("billing")


def test_unhealthy_after_n_failures_and_healthy_after_m_successes() -> None:
    """3 failures eject (2 do not); 2 successes readmit (1 does not); a success resets."""
    discovery = two_replicas(unhealthy_threshold=3, healthy_threshold=2)
    a = discovery.get_instances("auth")[0]
    discovery.record_check(a, False)
    discovery.record_check(a, False)
    discovery.record_check(a, True)
    discovery.record_check(a, False)
    discovery.record_check(a, False)
    assert a.healthy
    discovery.record_check(a, False)
    assert not a.healthy
    assert [i.id for i in discovery.healthy_instances("auth")] == ["b"]
    discovery.record_check(a, True)
    assert not a.healthy
    discovery.record_check(a, True)
    assert a.healthy
    assert {i.id for i in discovery.healthy_instances("auth")} == {"a", "b"}


async def test_health_loop_ejects_and_readmits_on_the_fake_clock(clock: FakeClock) -> None:
    """Every 30 s a check runs: a replica down for 3 checks is ejected, up for 2 readmitted."""
    discovery = two_replicas(health_check_interval=30_000)
    probe = ScriptedProbe()
    checker = HealthChecker(discovery, probe, clock=clock)
    events: list[tuple[str, str]] = []
    discovery.add_listener(lambda _s, instance, event: events.append((instance.id, event)))
    checker.start()
    await settle()
    assert probe.calls == 2  # one immediate round
    probe.up["127.0.0.1:4000"] = False
    for _ in range(2):
        clock.advance(30)
        await settle()
    assert discovery.get_instances("auth")[0].healthy
    clock.advance(30)
    await settle()
    assert [i.id for i in discovery.healthy_instances("auth")] == ["b"]
    probe.up["127.0.0.1:4000"] = True
    clock.advance(30)
    await settle()
    assert len(discovery.healthy_instances("auth")) == 1
    clock.advance(30)
    await settle()
    assert len(discovery.healthy_instances("auth")) == 2
    assert events == [("a", "unhealthy"), ("a", "healthy")]
    await checker.stop()
    assert not checker.running


async def test_a_probe_that_raises_counts_as_a_failed_check(clock: FakeClock) -> None:
    """A probe bug neither stops the loop nor leaves a replica looking healthy."""
    discovery = two_replicas(unhealthy_threshold=1)

    async def broken(instance: ServiceInstance, timeout_seconds: float) -> bool:
        raise RuntimeError("probe bug")

    await HealthChecker(discovery, broken, clock=clock).check_all()
    assert discovery.healthy_instances("auth") == ()


def test_sync_service_keeps_health_state_of_known_replicas() -> None:
    """A watcher's resync keeps known replicas' counters and drops vanished ones."""
    discovery = two_replicas(unhealthy_threshold=1)
    a = discovery.get_instances("auth")[0]
    discovery.record_check(a, False)
    fresh = [
        ServiceInstance(id="a", name="auth", host="127.0.0.1", port=4000),
        ServiceInstance(id="c", name="auth", host="127.0.0.1", port=4020),
    ]
    discovery.sync_service("auth", fresh)
    ids = {i.id: i for i in discovery.get_instances("auth")}
    assert set(ids) == {"a", "c"}
    assert ids["a"] is a
    assert not a.healthy


def test_static_addresses_from_the_environment() -> None:
    """AUTH_ADDR with two replicas registers auth-1 and auth-2; defaults fill the rest."""
    discovery = ServiceDiscovery()
    found = register_from_env(
        discovery,
        ["auth", "billing", "project"],
        environ={"AUTH_ADDR": "10.0.0.5:4000, 10.0.0.6:4000"},
        defaults={"billing": "127.0.0.1:4003"},
    )
    assert found == ["auth", "billing"]
    assert [(i.id, i.address) for i in discovery.get_instances("auth")] == [
        ("auth-1", "10.0.0.5:4000"),
        ("auth-2", "10.0.0.6:4000"),
    ]
    assert [i.address for i in instances_from_addresses("x", "[::1]:7000")] == ["[::1]:7000"]
    with pytest.raises(ValueError, match="host:port"):
        instances_from_addresses("auth", "nonsense")
