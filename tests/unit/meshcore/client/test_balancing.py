"""Load balancing strategies: distributions over a healthy set, as the seed names them."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from meshcore.balancing import (
    LeastConnections,
    PowerOfTwoChoicesEwma,
    RandomChoice,
    RoundRobin,
    SmoothWeightedRoundRobin,
    make_strategy,
)
from meshcore.discovery import ServiceDiscovery, ServiceInstance


def replicas(*weights: int) -> list[ServiceInstance]:
    return [
        ServiceInstance(id=f"auth-{i}", name="auth", host="10.0.0.1", port=4000 + i, weight=w)
        for i, w in enumerate(weights, start=1)
    ]


def test_round_robin_takes_each_in_turn() -> None:
    """Three replicas, nine picks: each exactly three times, in order."""
    pool = replicas(1, 1, 1)
    strategy = RoundRobin()
    picks = [strategy.pick(pool).id for _ in range(9)]
    assert picks == ["auth-1", "auth-2", "auth-3"] * 3


def test_weighted_three_to_one_is_split_and_interleaved() -> None:
    """Weights 3:1 give exactly 3:1 in every window of 4 picks, never 3 heavy picks in a row
    followed by the light one as a burst (smooth WRR: A A B A, not A A A B)."""
    heavy, light = replicas(3, 1)
    strategy = SmoothWeightedRoundRobin()
    picks = [strategy.pick([heavy, light]).id for _ in range(400)]
    assert Counter(picks) == {"auth-1": 300, "auth-2": 100}
    for start in range(0, 400, 4):
        assert Counter(picks[start : start + 4]) == {"auth-1": 3, "auth-2": 1}
    assert picks[:4] == ["auth-1", "auth-1", "auth-2", "auth-1"]


def test_weighted_spreads_heavy_picks_between_light_ones() -> None:
    """Weights 5:1:1 give nginx's a a b a c a a: the heavy replica never gets all five of its
    turns in one burst (plain weighted round robin's a a a a a b c)."""
    pool = replicas(5, 1, 1)
    strategy = SmoothWeightedRoundRobin()
    picks = [strategy.pick(pool).id for _ in range(700)]
    assert Counter(picks) == {"auth-1": 500, "auth-2": 100, "auth-3": 100}
    longest = run = 0
    for pick in picks:
        run = run + 1 if pick == "auth-1" else 0
        longest = max(longest, run)
    assert longest <= 4
    assert picks[:7] == ["auth-1", "auth-1", "auth-2", "auth-1", "auth-3", "auth-1", "auth-1"]


def test_weighted_gives_zero_weight_no_traffic() -> None:
    """A weight-0 replica (drained) gets nothing while others have weight."""
    pool = replicas(2, 0)
    strategy = SmoothWeightedRoundRobin()
    assert {strategy.pick(pool).id for _ in range(50)} == {"auth-1"}


def test_least_connections_picks_the_fewest_in_flight() -> None:
    """The replica with the fewest in-flight calls wins; as it fills up, the others get turns."""
    pool = replicas(1, 1, 1)
    pool[0].load.in_flight = 5
    pool[1].load.in_flight = 2
    pool[2].load.in_flight = 7
    strategy = LeastConnections()
    assert strategy.pick(pool).id == "auth-2"
    # Simulate calls staying in flight: picks level the load out.
    for _ in range(12):
        strategy.pick(pool).load.in_flight += 1
    assert sorted(i.load.in_flight for i in pool) == [8, 9, 9]


def test_least_connections_rotates_among_ties() -> None:
    """Equally idle replicas share the picks instead of the first one taking them all."""
    pool = replicas(1, 1, 1)
    strategy = LeastConnections()
    assert Counter(strategy.pick(pool).id for _ in range(300)) == {
        "auth-1": 100,
        "auth-2": 100,
        "auth-3": 100,
    }


def test_random_is_roughly_uniform() -> None:
    """Seeded random: 30 000 picks over three replicas land within 3 % of a third each."""
    pool = replicas(1, 1, 1)
    strategy = RandomChoice(random.Random(42))
    counts = Counter(strategy.pick(pool).id for _ in range(30_000))
    assert all(9_700 <= n <= 10_300 for n in counts.values())


def test_p2c_ewma_prefers_the_fast_replica() -> None:
    """A replica answering in 2 ms gets far more picks than one answering in 50 ms."""
    fast, slow, medium = replicas(1, 1, 1)
    for when in range(20):
        fast.load.observe(0.002, float(when))
        slow.load.observe(0.050, float(when))
        medium.load.observe(0.010, float(when))
    strategy = PowerOfTwoChoicesEwma(random.Random(1))
    counts = Counter(strategy.pick([fast, slow, medium]).id for _ in range(3_000))
    # fast wins both pairs it is in (2/3 of draws); slow never wins a pair.
    assert counts["auth-1"] == pytest.approx(2_000, rel=0.05)
    assert counts["auth-2"] == 0


def test_p2c_ewma_penalises_in_flight_queues() -> None:
    """Equal latency, but one replica has 10 calls queued: the idle one wins every pair."""
    busy, idle = replicas(1, 1)
    busy.load.observe(0.01, 0.0)
    idle.load.observe(0.01, 0.0)
    busy.load.in_flight = 10
    strategy = PowerOfTwoChoicesEwma(random.Random(3))
    assert {strategy.pick([busy, idle]).id for _ in range(100)} == {"auth-2"}


def test_peak_ewma_jumps_on_slowness_and_decays_back() -> None:
    """One slow answer is felt at once; fast answers bring the average down over seconds."""
    replica = replicas(1)[0]
    replica.load.observe(0.001, 0.0)
    replica.load.observe(0.5, 1.0)
    assert replica.load.ewma_seconds == 0.5
    replica.load.observe(0.001, 2.0)
    assert 0.4 < replica.load.ewma_seconds < 0.5
    for second in range(3, 60):
        replica.load.observe(0.001, float(second))
    assert replica.load.ewma_seconds < 0.01


def test_get_endpoint_uses_the_named_strategy_over_healthy_replicas() -> None:
    """The seed's getEndpoint(name, 'weighted') applies to healthy replicas only."""
    discovery = ServiceDiscovery()
    for spec in (
        {
            "id": "auth-service-1",
            "name": "auth-service",
            "host": "auth-1",
            "port": 4000,
            "weight": 3,
            "healthy": True,
        },
        {
            "id": "auth-service-2",
            "name": "auth-service",
            "host": "auth-2",
            "port": 4000,
            "weight": 1,
            "healthy": True,
        },
        {
            "id": "auth-service-3",
            "name": "auth-service",
            "host": "auth-3",
            "port": 4000,
            "weight": 9,
            "healthy": False,
        },
    ):
        discovery.register_service(spec)
    picks = Counter(discovery.get_endpoint("auth-service", "weighted").id for _ in range(40))
    assert picks == {"auth-service-1": 30, "auth-service-2": 10}


def test_unknown_strategy_names_the_known_ones() -> None:
    """A typo in a strategy name fails loudly and lists the valid names."""
    with pytest.raises(ValueError, match="p2c-ewma"):
        make_strategy("fastest")
