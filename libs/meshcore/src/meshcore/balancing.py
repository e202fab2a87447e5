"""Load balancing strategies: each a small object that picks one instance from a healthy set.

Names follow the seed (``round-robin``, ``least-connections``, ``weighted``, ``random``) plus
``p2c-ewma``, the power-of-two-choices balancer on peak-EWMA latency that Linkerd and Envoy use.
Every strategy keeps its own state, so discovery holds one strategy object per service.

``pick`` never awaits and takes no lock: all callers share one event loop, so a pick is atomic.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # discovery imports this module; at runtime only attributes are used
    from meshcore.discovery.instance import ServiceInstance

__all__ = [
    "STRATEGIES",
    "LeastConnections",
    "PowerOfTwoChoicesEwma",
    "RandomChoice",
    "RoundRobin",
    "SmoothWeightedRoundRobin",
    "Strategy",
    "StrategyName",
    "make_strategy",
]

StrategyName = Literal["round-robin", "least-connections", "weighted", "random", "p2c-ewma"]


class Strategy(Protocol):
    def pick(self, instances: Sequence[ServiceInstance]) -> ServiceInstance:
        """Choose one of ``instances`` (never empty)."""
        ...


class RoundRobin:
    """Each instance in turn."""

    def __init__(self) -> None:
        self._next = 0

    def pick(self, instances: Sequence[ServiceInstance]) -> ServiceInstance:
        index = self._next % len(instances)
        self._next = index + 1
        return instances[index]


class LeastConnections:
    """The instance with the fewest in-flight calls; ties rotate so idle replicas share load."""

    def __init__(self) -> None:
        self._rotation = 0

    def pick(self, instances: Sequence[ServiceInstance]) -> ServiceInstance:
        count = len(instances)
        self._rotation = (self._rotation + 1) % count
        best = instances[self._rotation]
        for offset in range(1, count):
            candidate = instances[(self._rotation + offset) % count]
            if candidate.load.in_flight < best.load.in_flight:
                best = candidate
        return best


class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round robin: weights 3:1 give ``A A B A`` spread, not ``AAAB``.

    Each pick adds every instance's weight to its running score, takes the highest score and
    subtracts the total weight from the winner. Over ``sum(weights)`` picks each instance is
    chosen exactly ``weight`` times, and heavy instances are never chosen in long bursts.
    Instances of weight 0 get no traffic unless every instance has weight 0.
    """

    def __init__(self) -> None:
        self._scores: dict[str, int] = {}

    def pick(self, instances: Sequence[ServiceInstance]) -> ServiceInstance:
        total = sum(instance.weight for instance in instances)
        if total == 0:
            weights = [1] * len(instances)
            total = len(instances)
        else:
            weights = [instance.weight for instance in instances]
        if len(self._scores) > 2 * len(instances):
            # Deregistered replicas would otherwise leave their scores behind forever.
            live = {instance.id for instance in instances}
            self._scores = {key: value for key, value in self._scores.items() if key in live}
        best: ServiceInstance | None = None
        best_score = 0
        for instance, weight in zip(instances, weights, strict=True):
            score = self._scores.get(instance.id, 0) + weight
            self._scores[instance.id] = score
            if best is None or score > best_score:
                best, best_score = instance, score
        assert best is not None
        self._scores[best.id] = best_score - total
        return best


class RandomChoice:
    """Uniformly random (the seed's ``random``); ``rng`` is injectable for tests."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, instances: Sequence[ServiceInstance]) -> ServiceInstance:
        return instances[self._rng.randrange(len(instances))]


class PowerOfTwoChoicesEwma:
    """Two random instances, keep the cheaper by ``ewma latency x (in-flight + 1)``.

    Comparing two random candidates (not the global best) avoids the herd that least-loaded
    picking causes when many clients see the same stale figures, and still steers traffic away
    from slow or congested replicas (Mitzenmacher; Finagle/Linkerd's P2C + peak EWMA).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, instances: Sequence[ServiceInstance]) -> ServiceInstance:
        count = len(instances)
        if count == 1:
            return instances[0]
        first = self._rng.randrange(count)
        second = self._rng.randrange(count - 1)
        if second >= first:
            second += 1
        a, b = instances[first], instances[second]
        return a if a.load.cost() <= b.load.cost() else b


STRATEGIES: dict[str, Callable[[random.Random | None], Strategy]] = {
    "round-robin": lambda _rng: RoundRobin(),
    "least-connections": lambda _rng: LeastConnections(),
    "weighted": lambda _rng: SmoothWeightedRoundRobin(),
    "random": RandomChoice,
    "p2c-ewma": PowerOfTwoChoicesEwma,
}


def make_strategy(name: str, rng: random.Random | None = None) -> Strategy:
    """A fresh strategy object for ``name``; a ``ValueError`` lists the known names."""
    try:
        factory = STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown load balancing strategy {name!r} (known: {known})") from None
    return factory(rng)
